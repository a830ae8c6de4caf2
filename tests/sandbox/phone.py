"""Paying a Native or H5 trade through the sandbox over HTTP, as a developer's phone would
(devtools/wechat_sandbox/phone.py). For any test that places such an order, with the sandbox
as WeChat:

- `scan_and_pay(code_url, openid)`: opens the code_url (the page of the WeChat that scanned it),
  then 确认支付 with that sandbox WeChat. Returns the answer page.
- `open_h5(h5_url, redirect_url=…)`: opens the h5_url as the merchant's page would send a
  phone's browser there (a Referer on SITE_URL, `&redirect_url=` url-encoded when given).
- `pay_h5(h5_url, redirect_url=…, openid=…)`: opens it, then 确认支付 (or 取消 with
  `cancel=True`); the answer is WeChat's redirect back to the merchant (302) unless refused.

Paying queues the payment notify, as the JSAPI cashier does: a test delivers it with
devtools.wechat_sandbox.delivery.deliver_due() or the delivery_worker fixture.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, quote, urlsplit

import requests
from django.conf import settings

ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
WECHAT = IPHONE + " MicroMessenger/8.0.49(0x18003133) NetType/WIFI Language/zh_CN"
PAYER = "oSandboxPhonePayer0000000001"


def merchant_page(path: str = "/orders/") -> str:
    """A page of the merchant's site: on its H5 pay domain (SITE_URL's host)."""
    return settings.SITE_URL + path


def field(page: str, name: str) -> str:
    """A hidden field's value in one of the phone pages."""
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no field {name} on the page"
    return html.unescape(found.group(1))


def sandbox_base(link: str) -> str:
    """The sandbox's base URL ({SITE_URL}/sandbox/) from one of its pay links."""
    parts = urlsplit(link)
    return f"{parts.scheme}://{parts.netloc}/sandbox/"


def scan(code_url: str, **kwargs) -> requests.Response:
    return requests.get(code_url, timeout=10, **kwargs)


def scan_and_pay(code_url: str, openid: str = PAYER, *, typed: str = "", **kwargs) -> requests.Response:
    """Scan the code, then 确认支付 as `openid` (or an openid typed into the page)."""
    scan(code_url, **kwargs).raise_for_status()
    token = parse_qs(urlsplit(code_url).query)["pr"][0]
    data = {"pr": token, "openid": openid, "openid_typed": typed}
    return requests.post(sandbox_base(code_url) + "native/pay", data=data, timeout=10, **kwargs)


def with_redirect(h5_url: str, redirect_url: str | None, *, encode: bool = True) -> str:
    """The h5_url with `&redirect_url=` appended as the merchant must: url-encoded."""
    if redirect_url is None:
        return h5_url
    return h5_url + "&redirect_url=" + (quote(redirect_url, safe="") if encode else redirect_url)


def open_h5(
    h5_url: str,
    redirect_url: str | None = None,
    *,
    referer: str | None = "",
    user_agent: str = ANDROID,
    encode: bool = True,
) -> requests.Response:
    """Open the h5_url as a phone's browser does when the merchant's page sends it there
    (`referer` "": a page of the merchant's site; None: no Referer at all)."""
    headers = {"User-Agent": user_agent}
    if referer is not None:
        headers["Referer"] = referer or merchant_page()
    return requests.get(with_redirect(h5_url, redirect_url, encode=encode), headers=headers, timeout=10)


def pay_h5(
    h5_url: str,
    redirect_url: str | None = None,
    openid: str = PAYER,
    *,
    cancel: bool = False,
    referer: str | None = "",
) -> requests.Response:
    """Open the h5_url, then 确认支付 as `openid` (or 取消). The answer is not followed: a 302
    back to the merchant, or the page with WeChat's refusal."""
    page = open_h5(h5_url, redirect_url, referer=referer)
    page.raise_for_status()
    data = {
        "prepay_id": field(page.text, "prepay_id"),
        "package": field(page.text, "package"),
        "back": field(page.text, "back"),
        "openid": openid,
        "action": "cancel" if cancel else "pay",
    }
    return requests.post(sandbox_base(h5_url) + "h5/pay", data=data, allow_redirects=False, timeout=10)

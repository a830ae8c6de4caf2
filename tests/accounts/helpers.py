"""Playing WeChat's browser against the sandbox's 网页授权, for the accounts tests."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.conf import settings

from devtools.wechat_sandbox.oauth import unionid_for
from devtools.wechat_sandbox.services import openid_for

WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI Language/zh_CN"
)
IN_WECHAT = {"HTTP_USER_AGENT": WECHAT_UA}


def wechat_redirect(authorize_url: str, browser: str = "alice") -> str:
    """What WeChat does: the user's browser comes back to our callback with code and state."""
    response = requests.get(authorize_url, cookies={"sandbox_wx_user": browser}, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    back = urlsplit(response.headers["Location"])
    assert f"{back.scheme}://{back.netloc}" == settings.SITE_URL
    return back.path + "?" + back.query


def openid(browser: str = "alice") -> str:
    """The 公众号 openid the sandbox gives this browser."""
    return openid_for(settings.WECHAT_APPID, browser)


def miniprogram_openid(person: str = "alice") -> str:
    return openid_for(settings.WECHAT_MINIPROGRAM_APPID, person)


def unionid(person: str = "alice") -> str:
    return unionid_for(person)


def open_in_wechat(client, path: str, browser: str = "alice"):
    """Open a page inside WeChat and follow it through 网页授权 (the sandbox answers for
    `browser`) until a page of this site answers that is not a redirect into WeChat."""
    response = client.get(path, **IN_WECHAT)
    for _ in range(6):
        if response.status_code != 302:
            return response
        location = response["Location"]
        if location.startswith(settings.SITE_URL + "/sandbox/"):
            location = wechat_redirect(location, browser)
        response = client.get(location, **IN_WECHAT)
    raise AssertionError("redirected in a loop")

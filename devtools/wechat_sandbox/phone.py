"""The WeChat app on a phone, for the two ways of paying that leave the merchant's page
(docs/wechat-pay-v2.md#native-scan-to-pay, #h5-pay-a-phones-browser):

- Native: the merchant draws the code_url as a QR code; nothing here can scan WeChat's
  weixin:// links, so the sandbox's code_url is this page (native_scan). It plays the WeChat
  that scanned: it shows the merchant and the amount, lets the developer pick which sandbox
  WeChat pays, and 确认支付 pays as the JSAPI cashier does (services.pay: the trade is paid and
  its notify queued).
- H5: the h5_url (v2 mweb_url) is WeChat's middle page (h5_checkmweb), which checks what
  WeChat's checks before it opens the WeChat app: not inside WeChat; a Referer, on the
  merchant's H5 pay domain (merchants.h5_domain: SITE_URL's host); a redirect_url, when the
  merchant appended one, url-encoded and on that domain; a link not past its 5 minutes. Each
  refusal is WeChat's own words. 确认支付 pays (services.pay) and sends the browser back to the
  redirect_url (else to the page that opened the link); 取消 goes back without paying.

A trade paid here is bound to its payer: another WeChat is refused (services.OTHER_PAYER).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common.money import format_fen
from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.merchants import h5_domain, merchant, on_h5_domain
from devtools.wechat_sandbox.models import AuthCode, Trade
from devtools.wechat_sandbox.oauth import BROWSER_COOKIE

# WeChat's words on its H5 middle page (WeChat Pay's H5 FAQ, docs/wechat-pay-v2.md#h5-pay-a-phones-browser).
IN_WECHAT = "请在微信外打开订单，进行支付"
NO_REFERER = "商家参数格式有误，请联系商家解决"
FOREIGN_DOMAIN = "商家存在未配置的参数，请联系商家解决"
H5_EXPIRED = "支付请求已失效，请重新发起支付"
H5_GARBLED_IOS, H5_GARBLED = "签名验证失败", "系统繁忙，请稍后再试"
# WeChat does not publish what its scanner says of a code_url past its 2 hours (or replaced by a
# newer order): the sandbox's words.
CODE_URL_GONE = "二维码已过期，请商家重新下单"
NO_PAYER = "请选择付款的微信"
PAYERS_SHOWN = 8


@dataclass(frozen=True)
class Payer:
    openid: str
    label: str


def payers(request, appid: str) -> list[Payer]:
    """The sandbox WeChats a developer may pay with, for one app (openids are per appid): this
    browser's (the 网页授权 cookie), then openids the sandbox has seen order or log in, then the
    default sandbox payer. The page also takes any openid typed in."""
    found: dict[str, str] = {}
    browser = request.COOKIES.get(BROWSER_COOKIE)
    if browser:
        found[services.openid_for(appid, browser)] = "本机的沙箱微信"
    seen = [
        *Trade.objects.filter(appid=appid).exclude(openid="").order_by("-created_at").values_list("openid", flat=True)[:50],
        *AuthCode.objects.filter(appid=appid).order_by("-created_at").values_list("openid", flat=True)[:50],
    ]
    for openid in seen:
        if len(found) >= PAYERS_SHOWN:
            break
        found.setdefault(openid, "沙箱里见过的微信")
    found.setdefault(services.openid_for(appid, services.DEFAULT_PAYER), "沙箱默认用户")
    return [Payer(openid, label) for openid, label in found.items()]


def chosen_payer(request) -> str:
    """The openid the form names: typed in, else picked from the list; "" if none or not one."""
    openid = (request.POST.get("openid_typed") or request.POST.get("openid") or "").strip()
    return openid if 1 <= len(openid) <= 128 and not any(c.isspace() for c in openid) else ""


def _sheet(request, trade: Trade | None) -> dict:
    """What a page shows of a trade: merchant, amount, goods, the payers to choose from, and
    whether it can be paid now (the pay button)."""
    if trade is None:
        return {"payable": False}
    mch = merchant(trade.mch_id)
    h5_info = trade.scene_info.get("h5_info") or {}
    names = ("wap_name", "app_name", "wap_url", "app_url", "type")
    return {
        "merchant": mch.name if mch else trade.mch_id,
        "yuan": format_fen(trade.total_fee),
        "trade": trade,
        "site": next((str(h5_info[name]) for name in names if h5_info.get(name)), ""),  # what h5_info calls the site
        "payers": payers(request, trade.appid),
        "payable": services.payable_problem(trade, timezone.now()) is None,
    }


def _page(request, template: str, context: dict):
    return render(request, f"sandbox/{template}", context)


# --- Native ------------------------------------------------------------------------------


def _native_trade(token: str) -> tuple[Trade | None, str | None]:
    """The trade of a code_url's pr and why it cannot be paid now (None if it can)."""
    trade = Trade.objects.filter(pay_token=token, trade_type=Trade.NATIVE).first() if token else None
    now = timezone.now()
    if trade is None or trade.pay_token_expires_at is None or trade.pay_token_expires_at <= now:
        return None, CODE_URL_GONE
    return trade, services.payable_problem(trade, now)


@require_GET
def native_scan(request):
    """The code_url, as the WeChat that scanned it shows it: 确认支付 for a payable trade, else
    the reason it cannot be paid."""
    token = request.GET.get("pr", "")
    trade, problem = _native_trade(token)
    return _page(request, "phone_native.html", {"token": token, "problem": problem, **_sheet(request, trade)})


@csrf_exempt
@require_POST
def native_pay(request):
    """确认支付 on the scanned code: pays with the chosen WeChat (services.pay)."""
    token = request.POST.get("pr", "")
    trade, problem = _native_trade(token)
    payer = chosen_payer(request)
    if trade is not None and problem is None:
        if not payer:
            problem = NO_PAYER
        else:
            try:
                state = services.pay(trade.prepay_id, trade.appid, payer)
            except services.CashierError as exc:
                problem = str(exc)
            else:
                return _page(request, "phone_result.html", {**_sheet(request, trade), "state": state, "payer": payer})
        trade.refresh_from_db()
    return _page(request, "phone_native.html", {"token": token, "problem": problem, **_sheet(request, trade)})


# --- H5 ----------------------------------------------------------------------------------


def _garbled(request) -> str:
    """What WeChat shows for a garbled h5_url (cut short, or a redirect_url not url-encoded)."""
    agent = request.headers.get("User-Agent", "")
    return H5_GARBLED_IOS if ("iPhone" in agent or "iPad" in agent) else H5_GARBLED


def _raw_redirect_url(request) -> str | None:
    """redirect_url as it stands in the query string, still encoded (None if absent)."""
    for part in request.META.get("QUERY_STRING", "").split("&"):
        name, sep, value = part.partition("=")
        if sep and name == "redirect_url":
            return value
    return None


def _h5_trade(prepay_id: str, token: str, *, check_expiry: bool) -> tuple[Trade | None, str | None]:
    trade = Trade.objects.filter(pay_token=token, trade_type=Trade.MWEB).first() if token else None
    now = timezone.now()
    if trade is None or trade.prepay_id != prepay_id or trade.pay_token_expires_at is None:
        return None, H5_EXPIRED
    if check_expiry and trade.pay_token_expires_at <= now:
        return None, H5_EXPIRED
    return trade, services.payable_problem(trade, now)


def h5_check(request) -> tuple[Trade | None, str, str | None]:
    """WeChat's checks of an opened h5_url, in order: (trade, where to go back, refusal or None)."""
    q = request.GET
    referer = request.headers.get("Referer", "")
    if "MicroMessenger" in request.headers.get("User-Agent", ""):
        return None, "", IN_WECHAT
    if not referer:
        return None, "", NO_REFERER
    if not on_h5_domain(referer):
        return None, "", FOREIGN_DOMAIN
    raw = _raw_redirect_url(request)
    if raw is not None and any(c in raw for c in ":/?#"):
        return None, "", _garbled(request)
    back = unquote_plus(raw) if raw is not None else referer
    if raw is not None and not on_h5_domain(back):
        return None, "", FOREIGN_DOMAIN
    if not q.get("prepay_id") or not q.get("package"):
        return None, back, _garbled(request)
    trade, problem = _h5_trade(q["prepay_id"], q["package"], check_expiry=True)
    return trade, back, problem


@require_GET
def h5_checkmweb(request):
    """The h5_url (mweb_url): WeChat's middle page, then the WeChat app's payment sheet."""
    trade, back, problem = h5_check(request)
    return _page(request, "phone_h5.html", {"problem": problem, "back": back, "domain": h5_domain(), **_sheet(request, trade)})


@csrf_exempt
@require_POST
def h5_pay(request):
    """确认支付 (pay with the chosen WeChat, then back to the merchant) or 取消 (back, unpaid).

    `back` is where h5_checkmweb would return (redirect_url, else the opening page); it must be
    on the H5 pay domain, so that this never redirects anywhere else."""
    back = request.POST.get("back", "")
    if not on_h5_domain(back):
        return _page(request, "phone_h5.html", {"problem": FOREIGN_DOMAIN, "back": "", "domain": h5_domain()})
    if request.POST.get("action") == "cancel":
        return HttpResponseRedirect(back)
    # The 5 minutes are the link's: a payment begun on the page may finish after them.
    trade, problem = _h5_trade(request.POST.get("prepay_id", ""), request.POST.get("package", ""), check_expiry=False)
    context = {"back": back, "domain": h5_domain()}
    if trade is not None and problem is None:
        payer = chosen_payer(request)
        if not payer:
            problem = NO_PAYER
        else:
            try:
                state = services.pay(trade.prepay_id, trade.appid, payer)
            except services.CashierError as exc:
                problem = str(exc)
            else:
                if state != Trade.PAYERROR:  # SUCCESS, or USERPAYING: only a query can tell
                    return HttpResponseRedirect(back)
                return _page(request, "phone_result.html", {**context, **_sheet(request, trade), "state": state, "payer": payer})
        trade.refresh_from_db()
    return _page(request, "phone_h5.html", {**context, "problem": problem, **_sheet(request, trade)})

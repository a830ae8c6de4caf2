"""The JSON API (docs/product.md#5-json-endpoints): the H5 recharge page's endpoints (signed in
with the session) and the mini program's (a bearer token, accounts/api.py), over the same
flows and with the same answers: an order is `RechargeOrder.to_dict()`, errors are
`{"error", "message"}` (common/http.py), a failed call to WeChat is common.api.wechat_error."""

from __future__ import annotations

import functools
import logging
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.api import bearer_required
from accounts.binding import OTHER, paying_wechat
from common import ratelimit
from common.api import json_object, wechat_error
from common.http import client_ip, in_wechat, json_error, json_ok
from common.money import format_fen
from orders.models import RechargeOrder
from payments import services
from payments.providers.base import WeChatError
from payments.views import bind_url, recharge_url

logger = logging.getLogger(__name__)
PAGE_SIZE = 20
PAGE_NUMBER = re.compile(r"^[1-9][0-9]{0,5}$")


def login_url(request) -> str:
    """Sign-in, then back to the page whose fetch found the session gone (its Referer, when it is ours)."""
    page = reverse("payments:recharge")
    referer = request.headers.get("Referer", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        page = parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse("accounts:login") + "?" + urlencode({"next": page})


def json_login_required(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            # The page cannot sign in by itself: it sends the person to login_url.
            return json_error("login_required", 401, "登录已过期，请重新登录", login_url=login_url(request))
        return view(request, *args, **kwargs)

    return wrapped


def _may_place_order(request) -> bool:
    """Count one order placed (or paid again: each asks WeChat) against the per-minute limits
    of this user and of this address (a person taps a few times; more is a script)."""
    return ratelimit.allow(
        f"prepay:user:{request.user.pk}", settings.RECHARGE_ORDERS_PER_MINUTE_PER_USER, 60
    ) and ratelimit.allow(f"prepay:ip:{_client_ip(request)}", settings.RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS, 60)


def _client_ip(request) -> str:
    """The client's address (behind DJANGO_TRUSTED_PROXY_COUNT proxies, the one they saw)."""
    return client_ip(request) or "127.0.0.1"


def _read_offer(data: dict | None) -> services.Offer | JsonResponse:
    """What the body asks to buy: {"package": id} (a package, at its price) or {"amount": "100.00"}
    (an amount of one's own, with the best tier's bonus); else the error to answer."""
    package = data.get("package") if data is not None else None
    if package is not None:
        if isinstance(package, str) and package.isascii() and package.isdigit() and len(package) <= 18:
            package = int(package)
        if isinstance(package, bool) or not isinstance(package, int) or not 0 < package < 2**63:
            return json_error("invalid_package", 400, "套餐编号无效，请刷新页面后重新选择")
        try:
            return services.Offer.for_package(package)
        except services.PackageUnavailable as exc:
            return json_error("package_unavailable", 409, str(exc))
    try:
        return services.Offer.for_amount(services.parse_amount(data.get("amount") if data is not None else None))
    except services.InvalidAmount:
        return json_error(
            "invalid_amount",
            400,
            f"请输入 {settings.RECHARGE_MIN_FEN / 100:.2f} 到 {settings.RECHARGE_MAX_FEN / 100:.2f} 元之间、最多两位小数的金额",
        )


def _read_method(request, data: dict | None) -> str | JsonResponse:
    allowed = services.pay_methods(request)
    asked = (data or {}).get("method")
    if asked is None:
        return allowed[0]
    if asked not in allowed:
        return json_error("invalid_method", 400, "此浏览器不能用这种方式支付，请刷新页面后重试", allowed=allowed)
    return asked


def prepay_answer(request, channel: str, include_app_id: bool = True, method: str | None = None):
    """Shared by the pages and the mini-program API: amount or package -> order -> how to pay
    it (`pay`: a PayAction; JSAPI's signed fields also as `pay_params`). `method` None: the
    browser's own way (pay_methods), or the one the body asks for among them."""
    data = json_object(request)  # the body, read once
    offer = _read_offer(data)
    if isinstance(offer, JsonResponse):
        return offer
    amount = offer.amount
    chosen = _read_method(request, data) if method is None else method
    if isinstance(chosen, JsonResponse):
        return chosen
    if not _may_place_order(request):
        return json_error("too_many_requests", 429)
    fallback = ""
    try:
        try:
            result = services.prepay(request.user, offer, channel, _client_ip(request), chosen)
        except services.H5Unavailable:
            # WeChat has not granted this merchant H5 pay: a QR code, saying so.
            fallback = "当前商户暂不支持在手机浏览器中直接支付，请用微信扫码支付"
            result = services.prepay(request.user, offer, channel, _client_ip(request), services.PayMethod.NATIVE)
    except services.TooManyOpenOrders:
        return json_error("too_many_orders", 429)
    except services.PackageLimitReached as limited:
        return json_error(
            "package_limit",
            409,
            f"「{limited.package.name}」每人限购 {limited.package.per_user_limit} 次，您已购买或有待支付的订单",
        )
    except services.BalanceCapReached as cap:
        return json_error(
            "balance_cap",
            422,
            f"账户余额上限为 ¥{format_fen(settings.BALANCE_CAP_FEN)}（含赠送），"
            + (f"本次最多还可充值 ¥{format_fen(cap.allowed)}" if cap.allowed else "现在不能再充值"),
            allowed_fen=cap.allowed,
        )
    except services.OpenidRequired:
        # Back on /recharge/ after binding, with this amount still chosen.
        package = offer.package.pk if offer.package is not None else None
        return json_error("openid_required", 409, bind_url=bind_url(recharge_url(amount, bound=True, package=package)))
    except services.OrderRefused as refused:
        # Closed as 下单失败: it is in the history as such, and a tap again places a new order.
        return json_error(
            "wechat_error",
            502,
            "微信支付下单失败，未扣款，请稍后再试",
            detail=refused.error.code,
            out_trade_no=refused.order.out_trade_no,
        )
    except services.PaymentBeingConfirmed as confirming:
        return json_error(
            "order_confirming",
            409,
            out_trade_no=confirming.order.out_trade_no,
            order_url=reverse("orders:detail", args=[confirming.order.out_trade_no]),
        )
    except WeChatError as exc:
        logger.warning("prepay for user %s failed: %s", request.user.pk, exc)
        return wechat_error(exc)  # not answered: the order is kept, WeChat may have it
    return json_ok(_placed(result.order, result.action, include_app_id, fallback))


def _placed(order: RechargeOrder, action, include_app_id: bool = True, fallback: str = "") -> dict:
    """The answer for a placed order: its number and amount, how to pay it (`pay`), and for
    JSAPI the signed fields (`pay_params`, as before)."""
    body: dict = {
        "out_trade_no": order.out_trade_no,
        "amount_fen": order.amount,
        "pay": {"kind": action.kind},
        "order_url": reverse("orders:detail", args=[order.out_trade_no]),
    }
    if action.kind == action.JSAPI:
        params = dict(action.params)
        if not include_app_id:
            params.pop("appId")
        body["pay_params"] = body["pay"]["params"] = params
    else:
        body["pay"]["url"] = action.url
    if fallback:
        body["pay"]["notice"] = fallback
    return body


@require_POST
@json_login_required
def jsapi_prepay(request):
    """The 公众号 page's JSAPI order (inside WeChat, or the sandbox's stand-in for its cashier);
    never inside another WeChat than the account's, which WeChat would not let pay it."""
    if in_wechat(request) and paying_wechat(request) == OTHER:
        return json_error(
            "wechat_mismatch", 409, "当前微信不是该账户绑定的微信，不能用它支付；请用扫码支付，或退出后用当前微信登录"
        )
    return prepay_answer(request, RechargeOrder.Channel.JSAPI, method=services.PayMethod.JSAPI)


@require_POST
@json_login_required
def page_prepay(request):
    """The recharge page's order, paid the browser's way (pay_methods): JSAPI, a QR code or H5."""
    return prepay_answer(request, RechargeOrder.Channel.JSAPI)


def order_status_answer(user, out_trade_no: str, just_paid: bool = False):
    """Shared by the H5 page and the mini-program API. A pending order is checked with WeChat
    (at most once every few seconds, however often it is polled; every second just after
    WeChat's client said the user paid)."""
    order = RechargeOrder.objects.filter(user=user, out_trade_no=out_trade_no).first()
    if order is None:
        return json_error("order_not_found", 404)
    order = services.poll_order(order, services.PAID_POLL_INTERVAL if just_paid else services.STATUS_POLL_INTERVAL)
    user.refresh_from_db(fields=["balance"])
    # confirming: WeChat took the money and it is not credited yet (支付已收到，正在确认).
    return json_ok({**order.to_dict(), "balance_fen": user.balance})


@require_GET
@json_login_required
def order_status(request, out_trade_no: str):
    return order_status_answer(request.user, out_trade_no, just_paid=request.GET.get("paid") == "1")


@require_POST
@json_login_required
def order_pay(request, out_trade_no: str):
    """继续支付 of this very order (same out_trade_no), never a new one, the way it was placed:
    JSAPI's fields signed again, Native's QR code, or H5's page (services.resume)."""
    order = RechargeOrder.objects.filter(user=request.user, out_trade_no=out_trade_no).first()
    if order is None:
        return json_error("order_not_found", 404)
    if order.channel != RechargeOrder.Channel.JSAPI:
        return json_error("order_wrong_channel", 409)  # its prepay_id is the mini program's
    # Counted with the orders placed: it asks WeChat each time.
    if not _may_place_order(request):
        return json_error("too_many_requests", 429)
    # Paid from another tab, or closed at WeChat, since the page was drawn? Asked outside the
    # polls' throttle (poll_order), so the status check right after this payment may ask again.
    try:
        order = services.sync_order(order)
    except WeChatError as exc:
        logger.warning("orderquery %s before paying again failed: %s", order.out_trade_no, exc)
    if order.is_credited:
        return json_error("order_paid", 409)
    if order.is_confirming:
        return json_error("order_confirming", 409)
    if order.status == RechargeOrder.Status.CLOSED:
        return json_error("order_closed", 410)
    if not order.is_resumable:
        return json_error("order_expired", 410)
    try:
        action = services.resume(order, _client_ip(request))
    except WeChatError as exc:
        logger.warning("paying %s again failed: %s", order.out_trade_no, exc)
        return wechat_error(exc)
    return json_ok(_placed(order, action))


# -- the mini program ------------------------------------------------------------------


@require_POST
@bearer_required
def miniprogram_prepay(request):
    # wx.requestPayment takes no appId: the mini program's appid is signed in, not sent.
    return prepay_answer(request, RechargeOrder.Channel.MINIPROGRAM, include_app_id=False, method=services.PayMethod.JSAPI)


@require_GET
@bearer_required
def miniprogram_packages(request):
    """The packages on sale (the recharge page's grid, in its order) and the tiers a custom
    amount may reach: {"packages": [...], "tiers": [...]} (docs/stored-value.md#packages)."""
    return json_ok(services.offers_on_sale())


@require_GET
@bearer_required
def miniprogram_order(request, out_trade_no: str):
    # ?paid=1 after wx.requestPayment succeeded: WeChat may be asked every second.
    return order_status_answer(request.user, out_trade_no, just_paid=request.GET.get("paid") == "1")


@require_GET
@bearer_required
def miniprogram_orders(request):
    number = request.GET.get("page", "1")
    if not PAGE_NUMBER.match(number):
        return json_error("invalid_request", 400, "page 必须是正整数")
    # One row past the page tells whether there is a next one: no COUNT(*) of the whole history.
    start = (int(number) - 1) * PAGE_SIZE
    rows = list(request.user.recharge_orders.order_by("-created_at", "-pk")[start : start + PAGE_SIZE + 1])
    results = [o.to_dict() for o in rows[:PAGE_SIZE]]
    return json_ok(
        {"balance_fen": request.user.balance, "results": results, "next_page": int(number) + 1 if len(rows) > PAGE_SIZE else None}
    )

from __future__ import annotations

import functools
import io
import json
import logging
from urllib.parse import urlsplit

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common import ratelimit
from common.http import client_ip, in_wechat, json_error, json_ok
from common.money import format_fen
from orders.models import RechargeOrder
from payments import notifies, services
from payments.models import Notification
from payments.providers import provider, provider_class
from payments.providers.base import WeChatError, answered
from wxproto import v2 as wxpay

logger = logging.getLogger(__name__)


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


def bind_url(next_path: str) -> str:
    return reverse("accounts:wechat_authorize") + "?" + urlencode({"next": next_path})


def recharge_url(amount: int | None = None, bound: bool = False) -> str:
    """/recharge/, with the amount to preselect and, back from binding WeChat, a flag to say so."""
    query = {"amount": format_fen(amount)} if amount is not None else {}
    if bound:
        query["bound"] = "1"
    return reverse("payments:recharge") + (f"?{urlencode(query)}" if query else "")


def _presets() -> list[tuple[str, int]]:
    presets = []
    for text in settings.RECHARGE_PRESETS:
        try:
            presets.append((text.strip(), services.parse_amount(text.strip())))
        except services.InvalidAmount:
            logger.warning("RECHARGE_PRESETS: %r is not a valid amount; left out", text)
    return presets


def _chosen_amount(request, presets: list[tuple[str, int]]) -> tuple[int | None, str]:
    """The amount carried in ?amount= (fen, and the text for the field: a preset's own text when it is one)."""
    try:
        fen = services.parse_amount(request.GET.get("amount"))
    except services.InvalidAmount:
        return None, ""
    return fen, next((text for text, preset in presets if preset == fen), format_fen(fen))


@login_required
def recharge(request):
    user = request.user
    if in_wechat(request) and not user.openid and not request.session.get("wechat_oauth_failed"):
        # Inside WeChat the openid comes silently (snsapi_base), with no click.
        return redirect(bind_url(request.get_full_path()))
    if "bound" in request.GET:
        # Back from binding WeChat in the middle of a payment (prepay_answer's bind_url). The
        # person taps pay again rather than being charged by a redirect: a payment starts from
        # a tap made with the amount in sight, and a reload or Back must never start one.
        if user.openid:
            messages.success(request, "微信已绑定。请确认金额，再点一次「立即充值」。")
        query = request.GET.copy()
        query.pop("bound")
        return redirect(request.path + (f"?{query.urlencode()}" if query else ""))
    presets = _presets()
    chosen_fen, chosen_text = _chosen_amount(request, presets)
    qr_svg = ""
    if not in_wechat(request) and not settings.WECHAT_SANDBOX:
        buffer = io.BytesIO()
        segno.make(settings.SITE_URL + reverse("payments:recharge"), error="m").save(
            buffer, kind="svg", scale=5, border=2, xmldecl=False, svgns=True
        )
        qr_svg = buffer.getvalue().decode()
    return render(
        request,
        "payments/recharge.html",
        {
            "presets": presets,
            "min_yuan": settings.RECHARGE_MIN_FEN / 100,
            "max_yuan": settings.RECHARGE_MAX_FEN / 100,
            "can_pay": in_wechat(request) or settings.WECHAT_SANDBOX,
            "qr_svg": qr_svg,
            "bind_url": bind_url(recharge_url(chosen_fen)),
            "chosen_fen": chosen_fen,
            "chosen_text": chosen_text,
        },
    )


def _may_place_order(request) -> bool:
    """Count one order placed (or paid again: each asks WeChat) against the per-minute limits
    of this user and of this address (a person taps a few times; more is a script)."""
    return ratelimit.allow(
        f"prepay:user:{request.user.pk}", settings.RECHARGE_ORDERS_PER_MINUTE_PER_USER, 60
    ) and ratelimit.allow(f"prepay:ip:{_client_ip(request)}", settings.RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS, 60)


def _client_ip(request) -> str:
    """The client's address (behind DJANGO_TRUSTED_PROXY_COUNT proxies, the one they saw)."""
    return client_ip(request) or "127.0.0.1"


def _read_amount(request) -> int | None:
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return services.parse_amount(data.get("amount"))
    except services.InvalidAmount:
        return None


def prepay_answer(request, channel: str, include_app_id: bool = True):
    """Shared by the H5 page and the mini-program API: amount -> order -> signed pay params."""
    amount = _read_amount(request)
    if amount is None:
        return json_error(
            "invalid_amount",
            400,
            f"请输入 {settings.RECHARGE_MIN_FEN / 100:.2f} 到 {settings.RECHARGE_MAX_FEN / 100:.2f} 元之间、最多两位小数的金额",
        )
    if not _may_place_order(request):
        return json_error("too_many_requests", 429)
    try:
        result = services.prepay(request.user, amount, channel, _client_ip(request))
    except services.TooManyOpenOrders:
        return json_error("too_many_orders", 429)
    except services.OpenidRequired:
        # Back on /recharge/ after binding, with this amount still chosen.
        return json_error("openid_required", 409, bind_url=bind_url(recharge_url(amount, bound=True)))
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
        if not answered(exc):  # the order is kept: WeChat may have it
            return json_error("wechat_unavailable", 502, detail=exc.code)
        return json_error("wechat_error", 502, detail=exc.code)
    params = dict(result.pay_params)
    if not include_app_id:
        params.pop("appId")
    return json_ok({"out_trade_no": result.order.out_trade_no, "amount_fen": result.order.amount, "pay_params": params})


@require_POST
@json_login_required
def jsapi_prepay(request):
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
    return json_ok(
        {
            "out_trade_no": order.out_trade_no,
            "status": order.status_name,
            "confirming": order.is_confirming,
            "amount_fen": order.amount,
            "balance_fen": user.balance,
        }
    )


@require_GET
@json_login_required
def order_status(request, out_trade_no: str):
    return order_status_answer(request.user, out_trade_no, just_paid=request.GET.get("paid") == "1")


@require_POST
@json_login_required
def order_pay(request, out_trade_no: str):
    """继续支付: fresh pay params for this order's own prepay_id (same out_trade_no), never a new order."""
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
    if order.is_settled:
        return json_error("order_paid", 409)
    if order.is_confirming:
        return json_error("order_confirming", 409)
    if order.status == RechargeOrder.Status.CLOSED:
        return json_error("order_closed", 410)
    if not order.is_resumable:
        return json_error("order_expired", 410)
    params = provider(order.channel).pay_params(order.prepay_id)
    return json_ok({"out_trade_no": order.out_trade_no, "amount_fen": order.amount, "pay_params": params})


def _notify(request, api: str, kind: str) -> HttpResponse:
    """Record, verify, apply (payments/notifies.py); the notify's provider answers WeChat in its
    own way (v2: SUCCESS or FAIL in XML; v3: the HTTP status)."""
    source = provider_class(api)
    body = request.read(wxpay.MAX_XML_BYTES + 1)
    headers = source.notify_headers(request)
    log = notifies.receive_notify(kind, body, request.META.get("REMOTE_ADDR"), api=api, headers=headers)
    return source.answer(log)


@csrf_exempt
@require_POST
def notify(request):
    """WeChat Pay's v2 payment notify: record, verify, apply; answer SUCCESS or FAIL (retry)."""
    return _notify(request, "v2", Notification.Kind.PAYMENT)


@csrf_exempt
@require_POST
def refund_notify(request):
    """WeChat Pay's v2 refund notify: record, decrypt req_info, settle the refund; SUCCESS or FAIL."""
    return _notify(request, "v2", Notification.Kind.REFUND)


@csrf_exempt
@require_POST
def notify_v3(request):
    """WeChat Pay's v3 payment notify: record, verify, decrypt, apply."""
    return _notify(request, "v3", Notification.Kind.PAYMENT)


@csrf_exempt
@require_POST
def refund_notify_v3(request):
    """WeChat Pay's v3 refund notify: record, verify, decrypt, settle the refund."""
    return _notify(request, "v3", Notification.Kind.REFUND)

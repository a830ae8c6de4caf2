from __future__ import annotations

import functools
import io
import json
import logging

import segno
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orders.models import RechargeOrder
from payments import services, wechat
from payments.models import Notification
from wxrecharge import ratelimit, wxpay
from wxrecharge.http import json_error, json_ok

logger = logging.getLogger(__name__)

STATUS_NAMES = {0: "pending", 1: "paid", 2: "closed", 3: "refunded"}
# Orders placed per minute: a person taps a few times; more is a script.
PREPAY_PER_USER = 10
PREPAY_PER_ADDRESS = 60
NOTIFY_SUCCESS = wxpay.to_xml({"return_code": "SUCCESS", "return_msg": "OK"})


def in_wechat(request) -> bool:
    return "MicroMessenger" in request.headers.get("User-Agent", "")


def json_login_required(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return json_error("login_required", 401)
        return view(request, *args, **kwargs)

    return wrapped


def bind_url(next_path: str) -> str:
    return reverse("accounts:wechat_authorize") + "?" + urlencode({"next": next_path})


@login_required
def recharge(request):
    user = request.user
    if in_wechat(request) and not user.openid and not request.session.get("wechat_oauth_failed"):
        # Inside WeChat the openid comes silently (snsapi_base), with no click.
        return redirect(bind_url(request.get_full_path()))
    presets = []
    for text in settings.RECHARGE_PRESETS:
        try:
            presets.append((text.strip(), services.parse_amount(text.strip())))
        except services.InvalidAmount:
            logger.warning("RECHARGE_PRESETS: %r is not a valid amount; left out", text)
    qr_svg = ""
    if not in_wechat(request) and not settings.WECHAT_SANDBOX:
        buffer = io.BytesIO()
        segno.make(settings.SITE_URL + reverse("payments:recharge"), error="m").save(
            buffer, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
        qr_svg = buffer.getvalue().decode()
    return render(request, "payments/recharge.html", {
        "presets": presets, "min_yuan": settings.RECHARGE_MIN_FEN / 100, "max_yuan": settings.RECHARGE_MAX_FEN / 100,
        "can_pay": in_wechat(request) or settings.WECHAT_SANDBOX, "qr_svg": qr_svg,
        "bind_url": bind_url(reverse("payments:recharge")),
    })


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR") or "127.0.0.1"


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
        return json_error("invalid_amount", 400,
                          f"请输入 {settings.RECHARGE_MIN_FEN / 100:.2f} 到 {settings.RECHARGE_MAX_FEN / 100:.2f} 元之间、"
                          "最多两位小数的金额")
    if not (ratelimit.allow(f"prepay:user:{request.user.pk}", PREPAY_PER_USER, 60)
            and ratelimit.allow(f"prepay:ip:{_client_ip(request)}", PREPAY_PER_ADDRESS, 60)):
        return json_error("too_many_requests", 429)
    try:
        result = services.prepay(request.user, amount, channel, _client_ip(request))
    except services.TooManyOpenOrders:
        return json_error("too_many_orders", 429)
    except services.OpenidRequired:
        return json_error("openid_required", 409, bind_url=bind_url(reverse("payments:recharge")))
    except wechat.WeChatError as exc:
        logger.warning("prepay for user %s failed: %s", request.user.pk, exc)
        if exc.code == "NETWORK":
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


def order_status_answer(user, out_trade_no: str):
    """Shared by the H5 page and the mini-program API. A pending order is checked with WeChat
    (at most once every few seconds, however often it is polled)."""
    order = RechargeOrder.objects.filter(user=user, out_trade_no=out_trade_no).first()
    if order is None:
        return json_error("order_not_found", 404)
    order = services.poll_order(order)
    user.refresh_from_db(fields=["balance"])
    return json_ok({"out_trade_no": order.out_trade_no, "status": STATUS_NAMES[order.status],
                    "amount_fen": order.amount, "balance_fen": user.balance})


@require_GET
@json_login_required
def order_status(request, out_trade_no: str):
    return order_status_answer(request.user, out_trade_no)


NOTIFY_FAIL = wxpay.to_xml({"return_code": "FAIL", "return_msg": "FAIL"})


def _notify_answer(ok: bool) -> HttpResponse:
    return HttpResponse(NOTIFY_SUCCESS if ok else NOTIFY_FAIL, content_type="text/xml")


@csrf_exempt
@require_POST
def notify(request):
    """WeChat Pay's payment notify: record, verify, apply; answer SUCCESS or FAIL (retry)."""
    body = request.read(wxpay.MAX_XML_BYTES + 1)
    return _notify_answer(services.handle_notify(Notification.Kind.PAYMENT, body, request.META.get("REMOTE_ADDR")))


@csrf_exempt
@require_POST
def refund_notify(request):
    """WeChat Pay's refund notify: record, decrypt req_info, settle the refund; SUCCESS or FAIL."""
    body = request.read(wxpay.MAX_XML_BYTES + 1)
    return _notify_answer(services.handle_notify(Notification.Kind.REFUND, body, request.META.get("REMOTE_ADDR")))

"""The signed-in user's recharge history and the page of one order."""

from __future__ import annotations

import io
from datetime import datetime

import segno
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.binding import OTHER, paying_wechat
from common.http import in_wechat, on_phone
from common.money import format_fen
from common.paging import newest_first
from orders.models import Lot, RechargeOrder

PAGE_SIZE = 20
# What the pay flow says when it lands on the order page (?result=): a reload says it again.
RESULTS = {"ok", "cancel", "fail"}
# The order page's other display hints: ?from=h5 (back from WeChat's H5 page: ask whether it
# was paid), ?notice=h5 (H5 pay was refused: a QR code instead). They choose words of our own
# and are never a URL to follow.
FROM_H5 = "h5"
NOTICE_H5 = "h5"
# WeChat's H5 page (wx.tenpay.com) opens only for a Referer on the merchant's H5 pay domain, and
# Django's default policy (same-origin) sends none across sites: the pages that send the browser
# there (the recharge page; 继续支付 here) send their origin only, never the path (docs/paying.md).
H5_REFERRER_POLICY = "strict-origin-when-cross-origin"


@login_required
def history(request):
    """Newest first, 20 at a time, by keyset (`before` the last row shown): the same cost on
    page 1 and page 5,000, and no COUNT(*) of the whole history (index (user, -created_at, -id))."""
    orders = request.user.recharge_orders.order_by("-created_at", "-pk").prefetch_related("refunds")
    rows, next_cursor, is_first_page = newest_first(orders, request.GET.get("before", ""), PAGE_SIZE)
    return render(
        request,
        "orders/history.html",
        {
            "orders": rows,
            "next_cursor": next_cursor,
            "is_first_page": is_first_page,
        },
    )


def _bonus_of(order: RechargeOrder) -> str:
    """The bonus credited with a paid order, in yuan ("" for none)."""
    bonus = Lot.objects.filter(order=order).values_list("bonus", flat=True).first() if order.is_credited else None
    return format_fen(bonus) if bonus else ""


def clock(seconds: int) -> str:
    """Time left as a countdown reads it: 14:59, or 1:59:59 past an hour (order.js counts on alike)."""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _payable_qrcode(order: RechargeOrder) -> bool:
    """The order's QR code (Native's code_url) may be shown: pending, not reported paid, and
    the code still valid."""
    return (
        order.status == RechargeOrder.Status.PENDING
        and order.pays_by_qrcode
        and not order.is_confirming
        and order.pay_url_is_valid()
    )


def _qr_svg(text: str) -> str:
    """`text` as an inline SVG QR code, sized by CSS (a full QR with its quiet zone, on white)."""
    return segno.make_qr(text, error="m").svg_inline(
        scale=1, border=4, omitsize=True, svgclass="pay-qr__svg", lineclass=None, light="#fff", title="微信支付二维码"
    )


def _pay_by(order: RechargeOrder) -> datetime | None:
    """Until when the order can be paid the way it was placed: its prepay_id (JSAPI), its QR
    code (Native), or the order itself (H5: a fresh page is asked for on 继续支付)."""
    if order.trade_type == RechargeOrder.TradeType.NATIVE and order.pay_url_expires_at:
        return min(order.pay_url_expires_at, order.expires_at)
    if order.trade_type == RechargeOrder.TradeType.MWEB:
        return order.expires_at
    return order.prepay_expires_at


@login_required
def detail(request, out_trade_no: str):
    """One order: status, amounts, times, refunds; 继续支付 while it can be paid; a Native
    order's QR code while it is valid; back from H5, the question whether it was paid. Owner
    only (404)."""
    order = get_object_or_404(RechargeOrder.objects.prefetch_related("refunds"), user=request.user, out_trade_no=out_trade_no)
    # The balance as of now, read after the order: a payment that landed since the user was
    # signed in for this request (order and balance commit together) shows in both.
    request.user.refresh_from_db(fields=["balance"])
    result = request.GET.get("result")
    pending = order.status == RechargeOrder.Status.PENDING and not order.is_confirming
    qrcode = _payable_qrcode(order)
    pay_by = _pay_by(order)
    qr_seconds = max(0, int((pay_by - timezone.now()).total_seconds())) if qrcode and pay_by else 0
    response = render(
        request,
        "orders/detail.html",
        {
            "order": order,
            "status": order.status_name,
            "result": result if result in RESULTS else "",
            "resumable": order.is_resumable,
            "confirming": order.is_confirming,
            # The bonus credited with it (its lot's), once paid.
            "bonus": _bonus_of(order),
            "pay_by": pay_by,
            # Native: the QR code to scan, and the seconds it has left (the page counts them
            # down; seconds, not a time, as the phone's clock may be wrong).
            "qr_svg": _qr_svg(order.pay_url) if qrcode else "",
            "qr_seconds": qr_seconds,
            "qr_clock": clock(qr_seconds),
            "on_phone": on_phone(request),
            "in_wechat": in_wechat(request),
            # A JSAPI order inside a WeChat that is not the account's: WeChat would refuse to let
            # it pay (下单账号与支付账号不一致), so it is not offered.
            "other_wechat": in_wechat(request)
            and order.trade_type == RechargeOrder.TradeType.JSAPI
            and paying_wechat(request) == OTHER,
            "from_h5": pending and order.trade_type == RechargeOrder.TradeType.MWEB and request.GET.get("from") == FROM_H5,
            "notice_h5": qrcode and request.GET.get("notice") == NOTICE_H5,
        },
    )
    response.headers["Referrer-Policy"] = H5_REFERRER_POLICY
    return response


@require_GET
@login_required
@never_cache
def qrcode(request, out_trade_no: str):
    """保存二维码: the QR code of a Native order's code_url as a PNG, for a phone to take to
    another device (it cannot scan its own screen, and WeChat pays a code its 扫一扫 scans, not
    one read from the album). Owner only, while the code is valid."""
    order = get_object_or_404(RechargeOrder, user=request.user, out_trade_no=out_trade_no)
    if not _payable_qrcode(order):
        raise Http404("no QR code to show")
    png = io.BytesIO()
    segno.make_qr(order.pay_url, error="m").save(png, kind="png", scale=10, border=4)
    response = HttpResponse(png.getvalue(), content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="wxpay-{order.out_trade_no}.png"'
    return response

"""The signed-in user's recharge history and the page of one order."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from common.money import format_fen
from common.paging import newest_first
from orders.models import Lot, RechargeOrder

PAGE_SIZE = 20
# What the pay flow says when it lands on the order page (?result=): a reload says it again.
RESULTS = {"ok", "cancel", "fail"}


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


@login_required
def detail(request, out_trade_no: str):
    """One order: status, amounts, times, refunds; 继续支付 while it can be paid. Owner only (404)."""
    order = get_object_or_404(RechargeOrder.objects.prefetch_related("refunds"), user=request.user, out_trade_no=out_trade_no)
    # The balance as of now, read after the order: a payment that landed since the user was
    # signed in for this request (order and balance commit together) shows in both.
    request.user.refresh_from_db(fields=["balance"])
    result = request.GET.get("result")
    return render(
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
        },
    )

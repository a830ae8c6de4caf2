"""The mini program's payment endpoints (docs/product.md#5-json-endpoints): the same services as the H5 page."""

from __future__ import annotations

import re

from django.views.decorators.http import require_GET, require_POST

from accounts.mp_api import bearer_required
from common.http import json_error, json_ok
from orders.models import RechargeOrder
from payments.views import order_status_answer, prepay_answer

PAGE_SIZE = 20
PAGE_NUMBER = re.compile(r"^[1-9][0-9]{0,5}$")


@require_POST
@bearer_required
def prepay(request):
    # wx.requestPayment takes no appId: the mini program's appid is signed in, not sent.
    return prepay_answer(request, RechargeOrder.Channel.MINIPROGRAM, include_app_id=False)


@require_GET
@bearer_required
def order(request, out_trade_no: str):
    # ?paid=1 after wx.requestPayment succeeded: WeChat may be asked every second.
    return order_status_answer(request.user, out_trade_no, just_paid=request.GET.get("paid") == "1")


@require_GET
@bearer_required
def orders(request):
    number = request.GET.get("page", "1")
    if not PAGE_NUMBER.match(number):
        return json_error("invalid_request", 400, "page 必须是正整数")
    # One row past the page tells whether there is a next one: no COUNT(*) of the whole history.
    start = (int(number) - 1) * PAGE_SIZE
    rows = list(request.user.recharge_orders.order_by("-created_at", "-pk")[start : start + PAGE_SIZE + 1])
    results = [
        {
            "out_trade_no": o.out_trade_no,
            "amount_fen": o.amount,
            "status": o.status_name,
            "confirming": o.is_confirming,
            "channel": o.channel,
            "refunded_fen": o.refunded_amount,
            "created_at": o.created_at.isoformat(),
            "paid_at": o.paid_at.isoformat() if o.paid_at else None,
        }
        for o in rows[:PAGE_SIZE]
    ]
    return json_ok(
        {"balance_fen": request.user.balance, "results": results, "next_page": int(number) + 1 if len(rows) > PAGE_SIZE else None}
    )

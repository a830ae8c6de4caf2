"""Our side of a day, made the way the site makes it (orders paid and refunds settled by the
models' own methods), and a snapshot of the books to show that a rerun changes nothing."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import time_machine
from django.db.models import Sum

from accounts.models import User
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments.models import Incident
from reconciliation.models import BillDay, BillRow, Difference
from tests.factories import make_order

_ids = itertools.count(1)


def transaction_id() -> str:
    return f"4200000000{next(_ids):022d}"


def refund_id() -> str:
    return f"5030000000{next(_ids):022d}"


def pending(user: User, amount: int, at: datetime, **fields) -> RechargeOrder:
    """An order placed at `at` that WeChat may have been paid for, without the notify here."""
    return make_order(user, amount=amount, created_at=at - timedelta(minutes=1), expires_at=at + timedelta(minutes=29), **fields)


def paid(user: User, amount: int, at: datetime, **fields) -> RechargeOrder:
    """An order paid at `at` and credited here (as its notify did)."""
    order = pending(user, amount, at, **fields)
    order.pay(transaction_id(), amount, at)
    order.refresh_from_db()
    return order


def refund(
    order: RechargeOrder,
    amount: int,
    settled_at: datetime | None = None,
    state: int = Refund.Status.SUCCESS,
    requested_at: datetime | None = None,
) -> Refund:
    """A refund requested and accepted by WeChat at `requested_at` (by default a minute before
    `settled_at`, or half an hour after the payment); settled (`state`) at `settled_at`, or
    still 退款中 without it."""
    requested_at = requested_at or (settled_at - timedelta(minutes=1) if settled_at else order.paid_at + timedelta(minutes=30))
    with time_machine.travel(requested_at, tick=False):
        item = order.start_refund(amount, "测试退款")
        item.accept(refund_id())
    if settled_at is not None:
        item.settle(state, settled_at=settled_at)
    item.refresh_from_db()
    return item


def snapshot() -> dict:
    """Everything a rerun must leave as it was."""
    return {
        "ledger": list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount")),
        "balances": User.objects.aggregate(total=Sum("balance"))["total"],
        "orders": list(RechargeOrder.objects.order_by("pk").values_list("pk", "status", "transaction_id", "paid_at")),
        "refunds": list(Refund.objects.order_by("pk").values_list("pk", "status", "settled_at")),
        "incidents": list(Incident.objects.order_by("pk").values_list("pk", "kind", "occurrences", "resolved_at")),
        "differences": list(
            Difference.objects.order_by("pk").values_list(
                "pk", "kind", "outcome", "incident_id", "wechat_amount", "our_amount", "detail"
            )
        ),
        "days": list(
            BillDay.objects.order_by("pk").values_list(
                "pk",
                "status",
                "reason",
                "wechat_paid_count",
                "wechat_refund_count",
                "wechat_paid",
                "wechat_refunded",
                "wechat_fee_millifen",
                "wechat_in_flight_count",
                "wechat_in_flight",
                "our_paid_count",
                "our_paid",
                "our_refund_count",
                "our_refunded",
            )
        ),
        "rows": BillRow.objects.count(),
    }

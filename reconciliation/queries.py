"""The day's comparison as database queries: which bill lines may differ from our books, and
which of our payments and refunds the bill lacks.

Each is one statement over the day's stored lines (reconciliation.models.BillRow) and our
orders and refunds, as values: a line that matches an order or refund in every way that
counts is left in the database (a correlated NOT EXISTS, which PostgreSQL runs as one
anti-join over the day), so that only the lines that may differ come back, and
reconciliation.services judges each of them as it always did. "May": the queries leave out
only what certainly matches; the judging decides the rest (a refund line that is not final
at either side, a trade on another day's bill).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import CharField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce

from orders.models import RechargeOrder, Refund
from payments.merchant import Merchant
from reconciliation.models import BillDay, BillRow
from wxproto.bill import PAYMENT, REFUND, REFUND_ABNORMAL, REFUND_CLOSED

MINIPROGRAM = RechargeOrder.Channel.MINIPROGRAM


def _line(name: str) -> ExpressionWrapper:
    """A column of the bill line, for the subquery to compare (typed, so that lookups apply)."""
    return ExpressionWrapper(OuterRef(name), output_field=CharField())


def _ours(merchant: Merchant, channel: str = "channel") -> Q:
    """The line is for our merchant and for the app that placed the order (`channel`: the
    order's channel field, as seen from the subquery)."""
    return Q(line_mch_id=merchant.mch_id) & (
        (Q(**{channel: MINIPROGRAM}) & Q(line_appid=merchant.miniprogram_appid))
        | (~Q(**{channel: MINIPROGRAM}) & Q(line_appid=merchant.appid))
    )


def payment_lines_that_may_differ(bill_day: BillDay, start: datetime, end: datetime, merchant: Merchant) -> QuerySet[BillRow]:
    """The day's payment lines (SUCCESS, each trade once) without an order of ours paid that day
    by that transaction for that amount, for our merchant and the order's app."""
    matching = (
        RechargeOrder.objects.filter(
            out_trade_no=OuterRef("out_trade_no"),
            transaction_id=OuterRef("transaction_id"),
            amount=OuterRef("amount"),
            paid_at__gte=start,
            paid_at__lt=end,
        )
        .annotate(line_mch_id=_line("mch_id"), line_appid=_line("appid"))
        .filter(_ours(merchant))
    )
    lines = BillRow.objects.filter(bill_day=bill_day, kind=PAYMENT, trade_state="SUCCESS", duplicate=False)
    return lines.filter(~Exists(matching)).order_by("line_no")


def paid_orders_not_billed(bill_day: BillDay, start: datetime, end: datetime) -> QuerySet[RechargeOrder]:
    """Our orders paid that day that the day's bill has no payment line for."""
    billed = BillRow.objects.filter(
        bill_day=bill_day, kind=PAYMENT, trade_state="SUCCESS", duplicate=False, out_trade_no=OuterRef("out_trade_no")
    )
    return RechargeOrder.objects.filter(paid_at__gte=start, paid_at__lt=end, transaction_id__isnull=False).filter(~Exists(billed))


def refund_lines_that_may_differ(bill_day: BillDay, start: datetime, end: datetime, merchant: Merchant) -> QuerySet[BillRow]:
    """The day's refund lines (each refund once) without a refund of ours of that order and
    amount, accepted that day, whose state agrees with the line's (docs/reconciliation.md):
    not refused here; SUCCESS there only if SUCCESS here; closed there only if not succeeded or
    abnormal here; abnormal there only if not closed here."""
    S = Refund.Status
    agrees = (
        ~Q(status=S.FAILED)
        & (~Q(line_status="SUCCESS") | Q(status=S.SUCCESS))
        & (~Q(line_status__in=REFUND_CLOSED) | ~Q(status__in=[S.SUCCESS, S.ABNORMAL]))
        & (~Q(line_status__in=REFUND_ABNORMAL) | ~Q(status=S.CLOSED))
    )
    matching = (
        Refund.objects.filter(
            out_refund_no=OuterRef("out_refund_no"),
            amount=OuterRef("refund_amount"),
            order__out_trade_no=OuterRef("out_trade_no"),
        )
        .annotate(
            requested=Coalesce("accepted_at", "created_at"),
            line_status=_line("refund_status"),
            line_mch_id=_line("mch_id"),
            line_appid=_line("appid"),
        )
        .filter(agrees, _ours(merchant, "order__channel"), requested__gte=start, requested__lt=end)
    )
    lines = BillRow.objects.filter(bill_day=bill_day, kind=REFUND, duplicate=False)
    return lines.filter(~Exists(matching)).order_by("line_no")


def refunds_not_billed(bill_day: BillDay, billed: QuerySet[Refund]) -> QuerySet[Refund]:
    """Of `billed` (our refunds WeChat's bill of the day should list), those it has no line for."""
    lines = BillRow.objects.filter(bill_day=bill_day, kind=REFUND, duplicate=False, out_refund_no=OuterRef("out_refund_no"))
    return billed.filter(~Exists(lines))

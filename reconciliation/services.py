"""Reconcile a Beijing day: WeChat's trade bill against the orders and refunds of that day.

`reconcile_day(day)` is the whole of it (the command, the admin's button and tests call
it): claim the day, download its bill through the payment interface (v2 or v3 alike),
verify it (wxproto.bill), store its rows, compare them with our books, settle what
a lost notify left undone and report the rest as incidents, then give the day its status.

- A payment WeChat has and we lack (the order pending or closed here) is applied by
  payments.services.apply_payment, exactly as its notify would have been, amount check
  included; a refund WeChat finished that is still 处理中 here, by settle_refund. Both
  are exactly-once: a rerun, a racing notify or a second runner finds them done.
- Anything else that differs is an Incident for operators, and nothing is changed.
- WeChat is called before any transaction starts; nothing of a bill that did not verify is
  stored or applied. A rerun updates the day's differences (one per kind and trade) and
  opens no incident twice; differences that were settled stay on record.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.money import fee_yuan, yuan
from orders.models import APPLIED, DUPLICATE, AmountMismatch, RechargeOrder, Refund
from payments import services as payment_services
from payments.merchant import Merchant
from payments.models import Incident
from payments.providers import provider
from payments.providers.base import NO_BILL, WeChatError
from reconciliation import queries
from reconciliation.models import BillDay, BillRow, DayTaken, Difference, beijing_today, bill_ready_at, day_bounds, row_of
from wxproto.beijing import BEIJING
from wxproto.bill import PAYMENT, REFUND, REFUND_ABNORMAL, REFUND_CLOSED, BillInvalid, Reader, Row

logger = logging.getLogger(__name__)

# A runner holds a day this long at most (a download times out long before); a runner that
# dies leaves its claim to expire.
CLAIM_DURATION = timedelta(minutes=10)
# --loop looks back this many days for days not yet reconciled.
LOOKBACK_DAYS = 7
CHUNK = 500

Kind, Outcome, Status = Difference.Kind, Difference.Outcome, BillDay.Status
# Our refunds WeChat's bill lists: those WeChat accepted (a refund it refused never reaches a
# bill), on the Beijing day it accepted them (the bill's 交易时间 of a refund is its request).
# A refund WeChat's bill lists: one it took, or ended; never a manual payout (线下退款).
BILLED_REFUND = (Q(accepted=True) | Q(status__in=[Refund.Status.SUCCESS, Refund.Status.CLOSED, Refund.Status.ABNORMAL])) & Q(
    manual=False
)


class DateRefused(ValueError):
    """A day that cannot be reconciled (today, or in the future); nothing is stored."""


class DayBusy(Exception):
    """Another runner is reconciling this day right now."""


# -- the day --------------------------------------------------------------------------------


def check_date(day: date, now: datetime | None = None) -> None:
    today = beijing_today(now)
    if day > today:
        raise DateRefused(f"{day.isoformat()} 在未来（北京时间今天是 {today.isoformat()}），没有账单")
    if day == today:
        raise DateRefused(f"{day.isoformat()} 是今天：微信在次日 10:00 后才生成当日账单")


def reconcile_day(day: date) -> BillDay:
    """Reconcile one Beijing day and return it with its status (see the module's docstring).

    Raises DateRefused (today or later: nothing stored) or DayBusy (another runner has it).
    A bill that is not ready, cannot be downloaded or does not verify leaves the day
    未就绪, 下载失败 or 账单无效 with the reason, and nothing applied; a later run completes it.
    """
    check_date(day)
    bill_day = BillDay.for_date(day)
    if not bill_day.claim(CLAIM_DURATION):
        raise DayBusy(f"{day.isoformat()} 正由另一个进程对账")
    try:
        _reconcile(bill_day)
    except DayTaken as exc:  # this runner was too slow: the one that took the day over finishes it
        raise DayBusy(str(exc)) from exc
    finally:
        bill_day.release()
    bill_day.refresh_from_db()
    logger.debug("reconcile_bill: %s", summary(bill_day))  # the command prints it
    return bill_day


def _reconcile(bill_day: BillDay) -> None:
    day = bill_day.date
    with tempfile.TemporaryFile() as data:  # the bill, on disk: a day may be hundreds of megabytes
        try:
            pay = provider()
            pay.download_bill_to(day, data)
        except WeChatError as exc:
            if exc.kind == NO_BILL:
                _no_bill(bill_day, exc)
            elif exc.code == "BAD_BILL":  # v3: the SHA1 did not match, not gzip, or cut off
                bill_day.record_failure(Status.INVALID, f"账单校验失败：{exc}", our_totals(day))
            else:
                bill_day.record_failure(Status.FAILED, f"{exc.code}：{exc}", our_totals(day))
            return
        data.seek(0)
        bill_day.renew(CLAIM_DURATION)  # the download may have been long

        def renew() -> None:
            bill_day.renew(CLAIM_DURATION)

        try:
            bill_day.store_bill(Reader(data, day), pay.api, renew)
        except BillInvalid as exc:
            bill_day.record_failure(Status.INVALID, str(exc), our_totals(day))
            return
    bill_day.renew(CLAIM_DURATION)
    _compare(bill_day)


def _no_bill(bill_day: BillDay, exc: WeChatError) -> None:
    """WeChat has no bill for the day. After the bill would have been ready, and with no
    payment or refund here either, there was nothing that day: balanced at zero. Otherwise
    the bill is not ready (yet): pending, for a later run."""
    day = bill_day.date
    ours = our_totals(day)
    creating = exc.code == "STATEMENT_CREATING" or "creating" in str(exc).lower()
    empty = ours["our_paid_count"] == 0 and ours["our_refund_count"] == 0
    if timezone.now() >= bill_ready_at(day) and not creating and empty and not bill_day.fetched_at:
        first = first_order_day()
        if first is None or day < first:
            since = f"（{first.isoformat()}）" if first else "（本站尚无订单）"
            reason = f"该日早于本站第一笔订单{since}，微信也无该日账单"
        else:
            reason = "微信无该日账单，本站当日也无支付和退款"
        bill_day.finish(ours, reason, no_bill=True)
        return
    if creating:
        reason = f"微信正在生成该日账单（{exc}）；稍后会再试"
    elif empty or timezone.now() < bill_ready_at(day):
        reason = f"微信尚未生成该日账单（{exc}）；稍后会再试"
    else:
        reason = (
            f"微信说该日没有账单（{exc}），但本站当日有 {ours['our_paid_count']} 笔支付、"
            f"{ours['our_refund_count']} 笔退款；稍后会再试，若一直如此请联系微信支付"
        )
    bill_day.record_failure(Status.PENDING, reason, ours)


def our_totals(day: date) -> dict[str, int]:
    """Our books of a Beijing day, as WeChat's bill counts them: orders paid (paid_at), and
    refunds WeChat accepted that day (whatever their outcome since)."""
    start, end = day_bounds(day)
    paid = RechargeOrder.objects.filter(paid_at__gte=start, paid_at__lt=end, transaction_id__isnull=False).aggregate(
        count=Count("pk"), total=Sum("amount")
    )
    refunded = billed_refunds(start, end).aggregate(count=Count("pk"), total=Sum("amount"))
    return {
        "our_paid_count": paid["count"],
        "our_paid": paid["total"] or 0,
        "our_refund_count": refunded["count"],
        "our_refunded": refunded["total"] or 0,
    }


def billed_refunds(start: datetime, end: datetime):
    """Our refunds that WeChat accepted in [start, end): the ones its bill of those days lists."""
    return (
        Refund.objects.filter(BILLED_REFUND)
        .annotate(requested_at=Coalesce("accepted_at", "created_at"))
        .filter(requested_at__gte=start, requested_at__lt=end)
    )


def first_order_day() -> date | None:
    first = RechargeOrder.objects.order_by("created_at").values_list("created_at", flat=True).first()
    return beijing_today(first) if first else None


# -- comparing ---------------------------------------------------------------------------------


@dataclass
class Finding:
    """A difference found, before anything is done about it. `action`: "incident", "info",
    "pay" (apply the payment as its notify would) or "refund" (settle the refund)."""

    kind: str
    action: str
    detail: str
    out_trade_no: str = ""
    out_refund_no: str = ""
    transaction_id: str = ""
    order: RechargeOrder | None = None
    refund: Refund | None = None
    wechat_amount: int | None = None
    our_amount: int | None = None
    row: Row | None = None

    @property
    def incident_kind(self) -> str:
        """The incident an operator gets for a difference: the kind of incident named after it."""
        return Incident.Kind(f"bill_{self.kind}")

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.out_trade_no, self.out_refund_no


def _by(queryset, field: str, values: Iterable[str]) -> dict:
    values = sorted(set(values))
    found = {}
    for n in range(0, len(values), CHUNK):
        for obj in queryset.filter(**{f"{field}__in": values[n : n + CHUNK]}):
            found[getattr(obj, field)] = obj
    return found


def _beijing(moment: datetime | None) -> str:
    return timezone.localtime(moment, BEIJING).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _foreign(row: Row, merchant: Merchant, order: RechargeOrder) -> str:
    """Why a line is not for our merchant and the order's app, or ""."""
    appid = merchant.appid_for(order.channel)
    if row.mch_id != merchant.mch_id or row.appid != appid:
        return f"账单中商户号 {row.mch_id}、appid {row.appid}，本站应为 {merchant.mch_id}、{appid}"
    return ""


def _other_day(bill_day: BillDay, **lookup) -> BillRow | None:
    """The same trade in another day's verified bill (WeChat and we put it on different days)."""
    return (
        BillRow.objects.filter(duplicate=False, **lookup)
        .exclude(bill_day=bill_day)
        .select_related("bill_day")
        .order_by("bill_day__date")
        .first()
    )


def find_differences(bill_day: BillDay) -> list[Finding]:
    """Compare the day's stored bill with our books of its day; nothing is changed here.

    The comparison runs in the database: a join of the day's bill lines with our orders and
    refunds returns only the lines that may differ (reconciliation/queries.py), and anti-joins
    our paid orders and billed refunds that the bill lacks. Only those come back to Python, as
    model objects, where each is judged exactly as a line at a time would be (`_payment`,
    `_refund`): the day's size costs database time, never memory here.
    """
    day = bill_day.date
    start, end = day_bounds(day)
    merchant = Merchant.current()
    findings = list(_duplicates(bill_day))

    for rows in _chunks(queries.payment_lines_that_may_differ(bill_day, start, end, merchant)):
        orders = _by(RechargeOrder.objects.all(), "out_trade_no", (r.out_trade_no for r in rows))
        findings += [f for row in rows if (f := _payment(row, orders.get(row.out_trade_no), start, end, merchant))]
    for order in _each(queries.paid_orders_not_billed(bill_day, start, end).order_by("paid_at", "pk")):
        findings.append(_unbilled_order(bill_day, order))

    for rows in _chunks(queries.refund_lines_that_may_differ(bill_day, start, end, merchant)):
        orders = _by(RechargeOrder.objects.all(), "out_trade_no", (r.out_trade_no for r in rows))
        refunds = _by(Refund.objects.select_related("order"), "out_refund_no", (r.out_refund_no for r in rows))
        findings += [f for row in rows if (f := _refund(row, refunds.get(row.out_refund_no), orders, start, end, merchant))]
    not_billed = queries.refunds_not_billed(bill_day, billed_refunds(start, end))
    for refund in _each(not_billed.order_by("requested_at", "pk"), "order"):
        findings.append(_unbilled_refund(bill_day, refund))
    return findings


def _each(queryset, *related: str) -> Iterator:
    """The objects a comparison query found, in its order, CHUNK at a time. The query runs once
    for their keys as a plain query: a server-side cursor (`iterator()` on PostgreSQL) would be
    planned for its first rows, a nested loop over the whole day, where a hash join over all
    of it is what finds the few differences fast."""
    keys = list(queryset.values_list("pk", flat=True))
    objects_of = queryset.model.objects.select_related(*related) if related else queryset.model.objects
    for n in range(0, len(keys), CHUNK):
        objects = objects_of.in_bulk(keys[n : n + CHUNK])
        # One gone meanwhile (the day's lines replaced by a runner that took the day over) is
        # that runner's to judge.
        yield from (objects[key] for key in keys[n : n + CHUNK] if key in objects)


def _chunks(lines) -> Iterable[list[Row]]:
    """The lines a comparison query found, CHUNK at a time, as the bill reader gave them."""
    batch: list[Row] = []
    for line in _each(lines):
        batch.append(row_of(line))
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _duplicates(bill_day: BillDay) -> Iterable[Finding]:
    """A trade on more than one line: its lines, first to last (marked when the bill was stored)."""
    repeated = bill_day.rows.filter(duplicate=True).values_list("kind", "transaction_id", "refund_id").distinct()
    for kind, transaction_id, refund_id in repeated.order_by("kind", "transaction_id", "refund_id"):
        key = {"refund_id": refund_id} if kind == REFUND else {"transaction_id": transaction_id}
        same = [row_of(line) for line in bill_day.rows.filter(kind=kind, **key).order_by("line_no")]
        orders = _by(RechargeOrder.objects.all(), "out_trade_no", [same[0].out_trade_no])
        refunds = _by(Refund.objects.select_related("order"), "out_refund_no", [same[0].out_refund_no] if kind == REFUND else [])
        yield _duplicate(same, orders, refunds)


def _unbilled_order(bill_day: BillDay, order: RechargeOrder) -> Finding:
    """An order we credited that day that the day's bill lacks: on another day's bill, or missing."""
    other = _other_day(bill_day, kind=PAYMENT, trade_state="SUCCESS", out_trade_no=order.out_trade_no)
    common = {
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.transaction_id or "",
        "order": order,
        "our_amount": order.amount,
    }
    if other is not None:
        return Finding(
            Kind.OTHER_DAY,
            "info",
            f"本站支付时间 {_beijing(order.paid_at)}，微信记在 "
            f"{other.bill_day.date.isoformat()} 的账单（{_beijing(other.happened_at)}）",
            **common,
        )
    return Finding(
        Kind.MISSING_PAYMENT,
        "incident",
        f"本站已入账 {yuan(order.amount)}（微信订单号 {order.transaction_id}，{_beijing(order.paid_at)}），"
        f"微信 {bill_day.date.isoformat()} 的账单中没有这笔支付；未做任何改动",
        **common,
    )


def _unbilled_refund(bill_day: BillDay, refund: Refund) -> Finding:
    """A refund WeChat accepted that day that the day's bill lacks: on another day's bill, or missing."""
    other = _other_day(bill_day, kind=REFUND, out_refund_no=refund.out_refund_no)
    requested_at = refund.accepted_at or refund.created_at
    common = {
        "out_trade_no": refund.order.out_trade_no,
        "out_refund_no": refund.out_refund_no,
        "order": refund.order,
        "refund": refund,
        "our_amount": refund.amount,
    }
    if other is not None:
        return Finding(
            Kind.OTHER_DAY,
            "info",
            f"本站退款受理时间 {_beijing(requested_at)}，微信记在 "
            f"{other.bill_day.date.isoformat()} 的账单（{_beijing(other.happened_at)}）",
            **common,
        )
    return Finding(
        Kind.MISSING_REFUND,
        "incident",
        f"本站退款 {yuan(refund.amount)}（{refund.get_status_display()}）已于 {_beijing(requested_at)} "
        f"由微信受理，微信 {bill_day.date.isoformat()} 的账单中没有这笔退款；未做任何改动",
        **common,
    )


def _duplicate(same: list[Row], orders: dict, refunds: dict) -> Finding:
    first, extra = same[0], same[1:]
    lines = "、".join(str(r.line_no) for r in same)
    identical = all(r.raw == first.raw for r in extra)
    is_refund = first.kind == REFUND
    what = f"退款 {first.refund_id or first.out_refund_no}" if is_refund else f"支付 {first.transaction_id}"
    amount = sum(r.refund_amount if is_refund else r.amount for r in extra)
    refund = refunds.get(first.out_refund_no) if is_refund else None
    return Finding(
        Kind.DUPLICATE,
        "incident",
        f"{what} 在账单中出现 {len(same)} 次（第 {lines} 行，{'内容相同' if identical else '内容不同'}）："
        f"只按第 {first.line_no} 行对账；微信的汇总含重复行，多计 {yuan(amount)}",
        out_trade_no=first.out_trade_no,
        out_refund_no=first.out_refund_no if is_refund else "",
        transaction_id=first.transaction_id,
        order=orders.get(first.out_trade_no),
        refund=refund,
        wechat_amount=amount,
        row=first,
    )


def _payment(row: Row, order: RechargeOrder | None, start: datetime, end: datetime, merchant: Merchant) -> Finding | None:
    common = {
        "out_trade_no": row.out_trade_no,
        "transaction_id": row.transaction_id,
        "order": order,
        "wechat_amount": row.amount,
        "our_amount": order.amount if order else None,
        "row": row,
    }
    paid = f"微信收款 {yuan(row.amount)}（微信订单号 {row.transaction_id}，{_beijing(row.happened_at)}）"
    if order is None:
        return Finding(Kind.UNKNOWN_ORDER, "incident", f"{paid}，本站没有订单 {row.out_trade_no}；未做任何改动", **common)
    foreign = _foreign(row, merchant, order)
    if foreign:
        return Finding(Kind.MERCHANT, "incident", f"{paid}；{foreign}；未做任何改动", **common)
    if order.transaction_id is None:  # pending or closed here: the notify was lost
        if row.amount != order.amount:
            return Finding(
                Kind.AMOUNT,
                "pay",
                f"{paid}，订单金额 {yuan(order.amount)}（本站「{order.get_status_display()}」）；金额不符，未入账",
                **common,
            )
        return Finding(
            Kind.MISSED_PAYMENT,
            "pay",
            f"{paid}，本站订单原为「{order.get_status_display()}」（支付通知丢失）：已按支付通知的规则入账",
            **common,
        )
    if order.transaction_id != row.transaction_id:
        return Finding(
            Kind.TRANSACTION, "incident", f"{paid}，本站订单已由微信订单号 {order.transaction_id} 支付；未做任何改动", **common
        )
    if row.amount != order.amount:
        return Finding(Kind.AMOUNT, "incident", f"{paid}，本站已入账 {yuan(order.amount)}；未做任何改动", **common)
    if not start <= order.paid_at < end:
        return Finding(Kind.OTHER_DAY, "info", f"{paid}，本站支付时间 {_beijing(order.paid_at)}（另一天）", **common)
    return None


def _refund(row: Row, refund: Refund | None, orders: dict, start: datetime, end: datetime, merchant: Merchant) -> Finding | None:
    """A refund line against our refund. The line was written when WeChat accepted the refund,
    with its status when the bill was cut, never updated: PROCESSING (or CHANGE) only says it
    was not finished then, whatever it is now; SUCCESS and REFUNDCLOSE say how it ended."""
    common = {
        "out_trade_no": row.out_trade_no,
        "out_refund_no": row.out_refund_no,
        "transaction_id": row.transaction_id,
        "order": refund.order if refund else orders.get(row.out_trade_no),
        "refund": refund,
        "wechat_amount": row.refund_amount,
        "our_amount": refund.amount if refund else None,
        "row": row,
    }
    told = (
        f"微信退款 {yuan(row.refund_amount)}（{row.refund_status}，微信退款单号 {row.refund_id}，"
        f"{_beijing(row.happened_at)} 受理）"
    )
    if refund is None or refund.order.out_trade_no != row.out_trade_no:
        return Finding(
            Kind.UNKNOWN_REFUND,
            "incident",
            f"{told}，本站没有订单 {row.out_trade_no} 的退款 {row.out_refund_no}；未做任何改动",
            **common,
        )
    foreign = _foreign(row, merchant, refund.order)
    if foreign:
        return Finding(Kind.MERCHANT, "incident", f"{told}；{foreign}；未做任何改动", **common)
    if row.refund_amount != refund.amount:
        return Finding(Kind.REFUND_AMOUNT, "incident", f"{told}，本站退款金额 {yuan(refund.amount)}；未做任何改动", **common)
    ours = f"本站为「{refund.get_status_display()}」"
    if refund.status == Refund.Status.FAILED:
        # Refused when we asked, and the balance given back: WeChat should have no such refund.
        return Finding(
            Kind.REFUND_STATE,
            "incident",
            f"{told}，{ours}（微信曾拒绝，余额已退回）：用户可能被退款两次，请核实；未做任何改动",
            **common,
        )
    if row.refund_status == "SUCCESS":
        if refund.status in Refund.OPEN:  # its notify was lost, or a 退款异常 resolved at WeChat since
            return Finding(
                Kind.UNSETTLED_REFUND, "refund", f"{told}，出账时已退款成功，{ours}：已按退款通知的规则记为退款成功", **common
            )
        if refund.status != Refund.Status.SUCCESS:
            return Finding(Kind.REFUND_STATE, "incident", f"{told}，{ours}；用户可能被退款两次，请核实；未做任何改动", **common)
    elif row.refund_status in REFUND_CLOSED and refund.status in (Refund.Status.SUCCESS, Refund.Status.ABNORMAL):
        return Finding(Kind.REFUND_STATE, "incident", f"{told}，出账时退款已关闭，{ours}；请核实；未做任何改动", **common)
    elif row.refund_status in REFUND_ABNORMAL and refund.status == Refund.Status.CLOSED:
        # The money had left the merchant when the bill was cut; here it was given back to the balance.
        return Finding(
            Kind.REFUND_STATE,
            "incident",
            f"{told}，出账时退款异常，{ours}（余额已退回）：用户可能被退款两次，请核实；未做任何改动",
            **common,
        )
    # Not finished at WeChat when the bill was cut (or closed at both): nothing differs.
    # sweep_orders asks WeChat about refunds still open here (refundquery).
    requested_at = refund.accepted_at or refund.created_at
    if not start <= requested_at < end:
        return Finding(Kind.OTHER_DAY, "info", f"{told}，本站退款受理时间 {_beijing(requested_at)}（另一天）", **common)
    return None


# -- acting on the differences ---------------------------------------------------------------


def _compare(bill_day: BillDay) -> None:
    findings = find_differences(bill_day)
    bill_day.renew(CLAIM_DURATION)
    kept: set[tuple[str, str, str]] = set()
    for n, finding in enumerate(findings, 1):
        if _act(bill_day, finding):
            kept.add(finding.key)
        if n % CHUNK == 0:
            bill_day.renew(CLAIM_DURATION)
    # What a rerun no longer finds goes, except what reconciliation itself settled: that stays on record.
    for difference in bill_day.differences.exclude(outcome=Outcome.SETTLED):
        if (difference.kind, difference.out_trade_no, difference.out_refund_no) not in kept:
            difference.delete()
    first = first_order_day()
    note = ""
    if first is None or bill_day.date < first:
        note = f"该日早于本站第一笔订单（{first.isoformat() if first else '本站尚无订单'}）"
    bill_day.finish(our_totals(bill_day.date), note)


def _act(bill_day: BillDay, f: Finding) -> bool:
    """Do what a finding calls for, once, and record it; False when it turned out to be no difference."""
    existing = Difference.objects.filter(
        bill_day=bill_day, kind=f.kind, out_trade_no=f.out_trade_no, out_refund_no=f.out_refund_no
    ).first()
    if existing is not None and (existing.incident_id or existing.outcome == Outcome.SETTLED):
        # Reported (or settled) by an earlier run: never twice. The operator may have resolved it.
        _record(bill_day, f, existing.outcome, existing.incident)
        return True
    if f.action == "pay":
        return _pay(bill_day, f)
    if f.action == "refund":
        return _settle_refund(bill_day, f)
    incident = None
    if f.action == "incident":
        incident = Incident.report(
            f.incident_kind,
            f"{bill_day.date.isoformat()} 微信账单：{f.detail}",
            order=f.order,
            refund=f.refund,
            out_trade_no=f.out_trade_no,
        )
    _record(bill_day, f, Outcome.INCIDENT if incident else Outcome.INFO, incident)
    return True


def _pay(bill_day: BillDay, f: Finding) -> bool:
    """A payment WeChat took that is pending or closed here: applied as its notify would be,
    in one transaction with its record."""
    row = f.row
    with transaction.atomic():
        try:
            done = payment_services.apply_payment(row.out_trade_no, row.transaction_id, row.amount, row.happened_at)
        except AmountMismatch as exc:
            # Nothing applied; apply_payment opened the incident a notify would have.
            f.kind = Kind.AMOUNT
            _record(bill_day, f, Outcome.INCIDENT, exc.incident)
            return True
        payment = done.payment
        if done.outcome == APPLIED:
            f.order = payment.order  # money taken after a close: credited, with its incident
            _record(bill_day, f, Outcome.SETTLED, done.incident)
            return True
    if done.outcome == DUPLICATE and payment.other_transaction_id:
        f.kind, f.detail = (
            Kind.TRANSACTION,
            (
                f"微信收款 {yuan(row.amount)}（微信订单号 {row.transaction_id}），本站订单已由"
                f"微信订单号 {payment.other_transaction_id} 支付；未做任何改动"
            ),
        )
        _record(bill_day, f, Outcome.INCIDENT, done.incident)
        return True
    return False  # credited meanwhile (its notify arrived): no difference after all


def _settle_refund(bill_day: BillDay, f: Finding) -> bool:
    """A refund WeChat finished that is still 处理中 (or 退款异常) here: settled as its notify
    would be. The bill has no success time: the refund is settled as of now."""
    row = f.row
    with transaction.atomic():
        done = payment_services.settle_refund(f.refund, Refund.Status.SUCCESS, row.refund_id, wechat_state="SUCCESS")
        if done.outcome == APPLIED:
            _record(bill_day, f, Outcome.SETTLED, None)
            return True
    if done.outcome == DUPLICATE:
        return False  # settled meanwhile (its notify arrived)
    # Ended another way meanwhile: settle_refund opened a REFUND_CONFLICT incident.
    f.refund.refresh_from_db()
    f.kind, f.detail = Kind.REFUND_STATE, f"微信退款成功，本站为「{f.refund.get_status_display()}」；未做任何改动"
    _record(bill_day, f, Outcome.INCIDENT, done.incident)
    return True


def _record(bill_day: BillDay, f: Finding, outcome: str, incident: Incident | None) -> Difference:
    difference, _ = Difference.objects.update_or_create(
        bill_day=bill_day,
        kind=f.kind,
        out_trade_no=f.out_trade_no,
        out_refund_no=f.out_refund_no,
        defaults={
            "outcome": outcome,
            "incident": incident,
            "order": f.order,
            "refund": f.refund,
            "transaction_id": f.transaction_id,
            "wechat_amount": f.wechat_amount,
            "our_amount": f.our_amount,
            "detail": f.detail,
        },
    )
    return difference


# -- summaries and the loop -------------------------------------------------------------------


def outcome_counts(bill_day: BillDay) -> dict[str, int]:
    """The day's differences: all, settled, shown only, and those with an incident (a settled
    one may have opened one too, such as money taken after the order was closed)."""
    return bill_day.differences.aggregate(
        total=Count("pk"),
        settled=Count("pk", filter=Q(outcome=Outcome.SETTLED)),
        info=Count("pk", filter=Q(outcome=Outcome.INFO)),
        incident=Count("pk", filter=Q(incident__isnull=False)),
    )


def summary(bill_day: BillDay) -> str:
    """The day in one line, e.g. `2026-11-23: 有差异 — WeChat 12 笔 ¥345.00 退款 ¥10.00 (出账时未完成 1 笔 ¥5.00)
    手续费 ¥2.07; ours 12 笔 ¥345.00 退款 ¥10.00; differences 3 (settled 1, incidents 2)`."""
    head = f"{bill_day.date.isoformat()}: {bill_day.get_status_display()}"
    if not bill_day.is_complete:
        return f"{head} — {bill_day.reason}"
    counts = outcome_counts(bill_day)
    info = f", info {counts['info']}" if counts["info"] else ""
    in_flight = f" (出账时未完成 {bill_day.in_flight_text()})" if bill_day.wechat_in_flight_count else ""
    line = (
        f"{head} — WeChat {bill_day.wechat_paid_count or 0} 笔 {yuan(bill_day.wechat_paid or 0)} "
        f"退款 {yuan(bill_day.wechat_refunded or 0)}{in_flight} 手续费 {fee_yuan(bill_day.wechat_fee_millifen or 0)}; "
        f"ours {bill_day.our_paid_count} 笔 {yuan(bill_day.our_paid)} 退款 {yuan(bill_day.our_refunded)}; "
        f"differences {counts['total']} (settled {counts['settled']}, incidents {counts['incident']}{info})"
    )
    if bill_day.reason:
        line += f"; {bill_day.reason}"
    if bill_day.last_error:
        line += f"; 最近一次重新对账失败（保留上次结果）：{bill_day.last_error}"
    return line


def due_days(now: datetime | None = None, lookback: int = LOOKBACK_DAYS) -> list[date]:
    """Days of the last `lookback` whose bill should be ready and that are not reconciled yet, oldest first."""
    now = now or timezone.now()
    today = beijing_today(now)
    days = [today - timedelta(days=n) for n in range(lookback, 0, -1)]
    done = set(BillDay.objects.filter(date__in=days, status__in=BillDay.COMPLETE).values_list("date", flat=True))
    return [day for day in days if day not in done and now >= bill_ready_at(day)]

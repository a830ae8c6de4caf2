"""reconcile_day: a day's bill against our books. Each kind of difference and what is done
about it, reruns that change nothing, and the bad days (not ready, network failure, a bill
that does not verify, a date in the future or before the first order)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.db.models import Sum

from accounts.models import User
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import services
from payments.models import Incident
from payments.providers.base import WeChatError
from reconciliation.models import BillDay, BillRow, Difference
from reconciliation.services import DateRefused, DayBusy, due_days, reconcile_day, summary
from tests.reconciliation.bills import BEIJING, bill, line, no_bill, pay_row, refund_row, summary_of
from tests.reconciliation.books import paid, pending, refund, refund_id, snapshot, transaction_id
from tests.reconciliation.conftest import DAY, NOW

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING)
Kind, Outcome, Status = Difference.Kind, Difference.Outcome, BillDay.Status


def billed(
    order: RechargeOrder, amount: int | None = None, txn: str | None = None, at: datetime | None = None, **changes
) -> dict:
    """The bill's line for a payment of `order` (its own amount and transaction id unless told)."""
    return pay_row(
        order.out_trade_no,
        order.amount if amount is None else amount,
        txn or order.transaction_id or transaction_id(),
        at or order.paid_at or AT,
        **changes,
    )


def billed_refund(
    item: Refund, amount: int | None = None, at: datetime | None = None, status: str = "SUCCESS", **changes
) -> dict:
    """The bill's line for a refund: dated when WeChat accepted it (not when it succeeded)."""
    return refund_row(
        item.order.out_trade_no,
        item.order.transaction_id,
        item.out_refund_no,
        item.refund_id or refund_id(),
        item.amount if amount is None else amount,
        at or item.accepted_at or AT + timedelta(hours=1),
        status=status,
        **changes,
    )


def only_difference(day: BillDay) -> Difference:
    (difference,) = day.differences.all()
    return difference


def ledger_rows() -> int:
    return LedgerEntry.objects.count()


def balance(user: User) -> int:
    user.refresh_from_db()
    return user.balance


@pytest.fixture(autouse=True)
def _now(clock):
    """Every test runs at 11:00 the day after DAY, when its bill is ready."""


# -- the day agrees ----------------------------------------------------------------------------------


def test_a_day_that_agrees_is_balanced_with_both_totals(wechat, payer, settings):
    a, b = paid(payer, 1000, AT), paid(payer, 2550, AT + timedelta(hours=3))
    r = refund(a, 300, settled_at=AT + timedelta(hours=5))
    wechat.bills[DAY] = bill(billed(a), billed(b), billed_refund(r))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.reason == "" and day.last_error == ""
    assert (
        day.wechat_count,
        day.wechat_paid_count,
        day.wechat_paid,
        day.wechat_refund_count,
        day.wechat_refunded,
        day.wechat_fee_millifen,
    ) == (3, 2, 3550, 1, 300, (6 + 15 - 2) * 1000)
    assert (day.our_paid_count, day.our_paid, day.our_refund_count, day.our_refunded) == (2, 3550, 1, 300)
    assert not day.totals_differ() and day.differences.count() == 0
    assert day.rows.count() == 3 and day.api == settings.WECHAT_PAY_API and day.attempts == 1
    assert day.fetched_at and day.reconciled_at
    assert summary(day) == (
        "2026-11-23: 已平 — WeChat 2 笔 ¥35.50 退款 ¥3.00 手续费 ¥0.19; "
        "ours 2 笔 ¥35.50 退款 ¥3.00; differences 0 (settled 0, incidents 0)"
    )
    assert wechat.calls == [DAY]


@pytest.mark.parametrize("api", ["v2", "v3"])
def test_both_api_versions_give_the_same_result(wechat, payer, settings, api):
    settings.WECHAT_PAY_API = api
    a = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(a))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.api == api


def test_orders_and_refunds_of_other_days_are_not_ours_of_this_day(wechat, payer):
    paid(payer, 1000, datetime(2026, 11, 22, 23, 59, 59, tzinfo=BEIJING))
    paid(payer, 1000, datetime(2026, 11, 24, 0, 0, tzinfo=BEIJING))
    today = paid(payer, 700, datetime(2026, 11, 23, 0, 0, tzinfo=BEIJING))
    # A refund is the day's when WeChat accepted it, as in WeChat's bill: not when it succeeded.
    taken = refund(today, 100, requested_at=datetime(2026, 11, 23, 23, 59, 59, tzinfo=BEIJING))
    refund(
        today,
        200,
        requested_at=datetime(2026, 11, 24, 0, 0, tzinfo=BEIJING),
        settled_at=datetime(2026, 11, 24, 0, 1, tzinfo=BEIJING),
    )
    wechat.bills[DAY] = bill(billed(today), billed_refund(taken, status="PROCESSING"))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and (day.our_paid_count, day.our_paid, day.our_refund_count, day.our_refunded) == (
        1,
        700,
        1,
        100,
    )


# -- payments --------------------------------------------------------------------------------------


def test_a_lost_notify_is_settled_once_and_a_rerun_changes_nothing(wechat, payer):
    order = pending(payer, 1990, AT)
    txn = transaction_id()
    wechat.bills[DAY] = bill(billed(order, txn=txn))
    day = reconcile_day(DAY)
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id == txn and order.paid_at == AT
    assert balance(payer) == 1990 and LedgerEntry.objects.filter(order=order).count() == 1
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.order, difference.incident) == (
        Kind.MISSED_PAYMENT,
        Outcome.SETTLED,
        order,
        None,
    )
    assert (difference.wechat_amount, difference.our_amount) == (1990, 1990)
    assert "支付通知丢失" in difference.detail and "待支付" in difference.detail
    assert day.status == Status.DIFFERENCES and not day.totals_differ()
    assert summary(day).endswith("differences 1 (settled 1, incidents 0)")
    assert not Incident.objects.exists()

    before, line_before = snapshot(), summary(day)
    again = reconcile_day(DAY)
    assert snapshot() == before and summary(again) == line_before and balance(payer) == 1990
    assert again.attempts == 2


def test_a_notify_that_arrives_after_the_bill_finds_the_order_paid(wechat, payer):
    from payments import services

    order = pending(payer, 1000, AT)
    txn = transaction_id()
    wechat.bills[DAY] = bill(billed(order, txn=txn))
    reconcile_day(DAY)
    payment = services.apply_payment(order.out_trade_no, txn, 1000, AT)
    assert payment.outcome == "duplicate" and balance(payer) == 1000 and ledger_rows() == 1


def test_money_taken_for_a_closed_order_is_credited_with_an_incident(wechat, payer):
    order = pending(payer, 1000, AT)
    order.close()
    wechat.bills[DAY] = bill(billed(order, txn=transaction_id()))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome) == (Kind.MISSED_PAYMENT, Outcome.SETTLED)
    assert difference.incident.kind == Incident.Kind.PAID_AFTER_CLOSE and balance(payer) == 1000
    # Settled, and an incident for the operator: the summary counts both.
    assert summary(day).endswith("differences 1 (settled 1, incidents 1)")


def test_a_lost_notify_of_another_amount_is_an_incident_and_nothing_is_credited(wechat, payer):
    order = pending(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, amount=1, txn=transaction_id()))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.wechat_amount, difference.our_amount) == (
        Kind.AMOUNT,
        Outcome.INCIDENT,
        1,
        1000,
    )
    # The same incident a notify with that amount opens (payments.services.apply_payment).
    assert difference.incident.kind == Incident.Kind.AMOUNT_MISMATCH and difference.incident.order == order
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and balance(payer) == 0 and ledger_rows() == 0
    before = snapshot()
    reconcile_day(DAY)
    assert snapshot() == before  # not reported a second time


def test_a_payment_of_another_amount_than_credited_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, amount=1200))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.incident.kind) == (
        Kind.AMOUNT,
        Outcome.INCIDENT,
        Incident.Kind.BILL_AMOUNT,
    )
    assert day.totals_differ() and balance(payer) == 1000


def test_an_order_unknown_here_is_an_incident(wechat, payer):
    wechat.bills[DAY] = bill(pay_row("20261123120000109999999999", 500, transaction_id(), AT))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.order, difference.wechat_amount) == (
        Kind.UNKNOWN_ORDER,
        Outcome.INCIDENT,
        None,
        500,
    )
    assert difference.incident.kind == Incident.Kind.BILL_UNKNOWN_ORDER
    assert difference.incident.out_trade_no == "20261123120000109999999999"
    assert day.status == Status.DIFFERENCES and ledger_rows() == 0


def test_a_payment_missing_from_the_bill_is_an_incident_and_nothing_changes(wechat, payer):
    kept, missing = paid(payer, 1000, AT), paid(payer, 2000, AT)
    wechat.bills[DAY] = bill(billed(kept))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.order, difference.our_amount) == (
        Kind.MISSING_PAYMENT,
        Outcome.INCIDENT,
        missing,
        2000,
    )
    assert difference.incident.kind == Incident.Kind.BILL_MISSING_PAYMENT and difference.incident.order == missing
    missing.refresh_from_db()
    assert missing.status == RechargeOrder.Status.PAID and balance(payer) == 3000
    assert [t["differs"] for t in day.totals()] == [True, True, True, False, False, False]


@pytest.mark.parametrize(("column", "value"), [("商户号", "1900000999"), ("公众账号ID", "wxforeign0000000001")])
def test_a_line_of_another_merchant_or_app_is_an_incident_never_credited(wechat, payer, column, value):
    order = pending(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, txn=transaction_id(), **{column: value}))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.outcome, difference.incident.kind) == (
        Kind.MERCHANT,
        Outcome.INCIDENT,
        Incident.Kind.BILL_MERCHANT,
    )
    assert value in difference.detail and balance(payer) == 0


def test_a_mini_program_order_is_expected_with_the_mini_programs_appid(wechat, payer, settings):
    order = paid(payer, 1000, AT, channel="miniprogram")
    wechat.bills[DAY] = bill(billed(order, 公众账号ID=settings.WECHAT_MINIPROGRAM_APPID))
    assert reconcile_day(DAY).status == Status.BALANCED


def test_another_transaction_for_a_paid_order_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, txn=transaction_id()))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.incident.kind) == (
        Kind.TRANSACTION,
        Outcome.INCIDENT,
        Incident.Kind.BILL_TRANSACTION,
    )
    assert order.transaction_id in difference.detail and balance(payer) == 1000


def test_a_payment_we_put_on_another_day_is_shown_not_reported(wechat, payer):
    order = paid(payer, 1000, datetime(2026, 11, 24, 0, 0, 1, tzinfo=BEIJING))
    wechat.bills[DAY] = bill(billed(order, at=datetime(2026, 11, 23, 23, 59, 59, tzinfo=BEIJING)))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.incident) == (Kind.OTHER_DAY, Outcome.INFO, None)
    assert summary(day).endswith("differences 1 (settled 0, incidents 0, info 1)")
    # The next day's bill does not have it; its own reconciliation finds it in this one.
    wechat.bills[DAY + timedelta(days=1)] = bill()
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        next_day = reconcile_day(DAY + timedelta(days=1))
    assert only_difference(next_day).kind == Kind.OTHER_DAY and not Incident.objects.exists()


# -- refunds ----------------------------------------------------------------------------------------


def test_a_refund_done_at_wechat_but_processing_here_is_settled_once(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400)
    at = AT + timedelta(hours=2)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, at=at))
    day = reconcile_day(DAY)
    item.refresh_from_db()
    order.refresh_from_db()
    assert item.status == Refund.Status.SUCCESS and item.settled_at == NOW  # the bill has no success time
    assert order.status == RechargeOrder.Status.REFUNDED and order.refunded_amount == 400
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.refund) == (Kind.UNSETTLED_REFUND, Outcome.SETTLED, item)
    assert (day.our_refund_count, day.our_refunded) == (1, 400) and balance(payer) == 600
    before = snapshot()
    reconcile_day(DAY)
    assert snapshot() == before


def test_a_refund_missing_from_the_bill_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400, settled_at=AT + timedelta(hours=1))
    wechat.bills[DAY] = bill(billed(order))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.outcome, difference.refund, difference.incident.kind) == (
        Kind.MISSING_REFUND,
        Outcome.INCIDENT,
        item,
        Incident.Kind.BILL_MISSING_REFUND,
    )
    assert difference.incident.refund == item


def test_a_refund_of_another_amount_is_an_incident_and_stays_processing(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, amount=500))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.outcome, difference.wechat_amount, difference.our_amount) == (
        Kind.REFUND_AMOUNT,
        Outcome.INCIDENT,
        500,
        400,
    )
    item.refresh_from_db()
    assert item.status == Refund.Status.PROCESSING and balance(payer) == 600


def test_a_refund_closed_here_but_successful_at_wechat_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400, settled_at=AT, state=Refund.Status.CLOSED)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, at=AT + timedelta(hours=1)))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.incident.kind) == (Kind.REFUND_STATE, Incident.Kind.BILL_REFUND_STATE)
    assert balance(payer) == 1000  # the balance given back stays given back


def test_a_refund_unknown_here_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(
        billed(order),
        refund_row(order.out_trade_no, order.transaction_id, "RF-unknown", refund_id(), 100, AT + timedelta(hours=1)),
    )
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.out_refund_no, difference.order, difference.refund) == (
        Kind.UNKNOWN_REFUND,
        "RF-unknown",
        order,
        None,
    )


def test_a_refund_still_processing_at_wechat_and_here_is_no_difference(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status="PROCESSING"))
    day = reconcile_day(DAY)
    assert day.differences.count() == 0 and day.status == Status.BALANCED
    item.refresh_from_db()
    assert item.status == Refund.Status.PROCESSING


def test_a_refund_processing_in_the_bill_stays_no_difference_after_it_succeeds_here(wechat, payer):
    """WeChat writes a refund into the bill when it is requested and never updates its status:
    PROCESSING only says it was not finished when the bill was cut. Running the day again
    after the refund succeeded here changes nothing."""
    order = paid(payer, 1000, AT)
    item = refund(order, 400, requested_at=AT + timedelta(hours=11, minutes=59))
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status="PROCESSING"))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.differences.count() == 0
    assert (day.wechat_refunded, day.our_refunded, day.wechat_in_flight_count, day.wechat_in_flight) == (400, 400, 1, 400)
    assert not day.totals_differ()
    in_flight = [t for t in day.totals() if t["label"] == "其中出账时未完成"]
    assert in_flight[0]["wechat"] == "1 笔 ¥4.00" and "不是差异" in in_flight[0]["note"]
    assert "退款 ¥4.00 (出账时未完成 1 笔 ¥4.00)" in summary(day)
    item.settle(Refund.Status.SUCCESS, settled_at=NOW)  # its notify, the next morning
    before = snapshot()
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.differences.count() == 0 and not Incident.objects.exists()
    assert snapshot() == before


@pytest.mark.parametrize("ours", [Refund.Status.CLOSED, Refund.Status.ABNORMAL])
def test_a_refund_processing_in_the_bill_that_ended_otherwise_here_is_no_difference(wechat, payer, ours):
    order = paid(payer, 1000, AT)
    item = refund(order, 400, settled_at=AT + timedelta(hours=3), state=ours)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status="PROCESSING"))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.differences.count() == 0


def test_a_refund_abnormal_here_that_the_bill_shows_successful_is_settled_as_a_success(wechat, payer):
    """CHANGE (退款异常) is not final: the merchant resolves it in the merchant platform and
    WeChat then reports SUCCESS. The bill's SUCCESS settles it, and closes its incident."""
    order = paid(payer, 1000, AT)
    item = refund(order, 400)
    services.settle_refund(item, Refund.Status.ABNORMAL)
    abnormal = Incident.objects.get(kind=Incident.Kind.REFUND_ABNORMAL, refund=item)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status="SUCCESS"))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.outcome) == (Kind.UNSETTLED_REFUND, Outcome.SETTLED)
    item.refresh_from_db()
    order.refresh_from_db()
    abnormal.refresh_from_db()
    assert item.status == Refund.Status.SUCCESS and order.refunded_amount == 400 and balance(payer) == 600
    assert abnormal.resolved_at is not None and "退款成功" in abnormal.resolution
    assert not Incident.objects.filter(kind__in=[Incident.Kind.REFUND_CONFLICT, Incident.Kind.BILL_REFUND_STATE]).exists()


@pytest.mark.parametrize("status", ["PROCESSING", "CHANGE", "SUCCESS"])
def test_a_refund_wechat_refused_here_but_in_the_bill_is_an_incident(wechat, payer, status):
    """Refused when we asked (the balance given back), yet WeChat's bill lists it: the first
    request may have reached WeChat after all. The user may have the money twice."""
    order = paid(payer, 1000, AT)
    item = order.start_refund(400, "测试退款")
    item.settle(Refund.Status.FAILED, settled_at=AT + timedelta(hours=1))
    assert balance(payer) == 1000
    wechat.bills[DAY] = bill(
        billed(order),
        refund_row(
            order.out_trade_no,
            order.transaction_id,
            item.out_refund_no,
            refund_id(),
            400,
            AT + timedelta(minutes=59),
            status=status,
        ),
    )
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.incident.kind) == (Kind.REFUND_STATE, Incident.Kind.BILL_REFUND_STATE)
    assert "两次" in difference.detail and balance(payer) == 1000


@pytest.mark.parametrize("word", ["CHANGE", "ABNORMAL"])  # v2's word for 退款异常, and v3's
def test_a_refund_abnormal_in_the_bill_but_closed_here_is_an_incident(wechat, payer, word):
    order = paid(payer, 1000, AT)
    item = refund(order, 400, settled_at=AT + timedelta(hours=3), state=Refund.Status.CLOSED)
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status=word))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.incident.kind) == (Kind.REFUND_STATE, Incident.Kind.BILL_REFUND_STATE)


def test_a_refund_closed_in_the_bill_but_successful_here_is_an_incident(wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 400, settled_at=AT + timedelta(hours=1))
    wechat.bills[DAY] = bill(billed(order), billed_refund(item, status="REFUNDCLOSE"))
    difference = only_difference(reconcile_day(DAY))
    assert (difference.kind, difference.incident.kind) == (Kind.REFUND_STATE, Incident.Kind.BILL_REFUND_STATE)


# -- the bill itself --------------------------------------------------------------------------------


def test_a_trade_twice_in_the_bill_is_counted_once_and_reported(wechat, payer):
    order = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order), billed(order))
    day = reconcile_day(DAY)
    difference = only_difference(day)
    assert (difference.kind, difference.outcome, difference.incident.kind, difference.wechat_amount) == (
        Kind.DUPLICATE,
        Outcome.INCIDENT,
        Incident.Kind.BILL_DUPLICATE,
        1000,
    )
    assert "第 2、3 行" in difference.detail and "内容相同" in difference.detail
    # WeChat's totals as published (both lines), ours once: the difference explains the gap.
    assert (day.wechat_paid_count, day.wechat_paid, day.our_paid) == (2, 2000, 1000)
    assert list(day.rows.values_list("line_no", "duplicate")) == [(2, False), (3, True)]
    assert balance(payer) == 1000


def test_a_lost_notify_twice_in_the_bill_is_credited_once(wechat, payer):
    order = pending(payer, 1000, AT)
    line_of_bill = billed(order, txn=transaction_id())
    wechat.bills[DAY] = bill(line_of_bill, line_of_bill)
    day = reconcile_day(DAY)
    assert dict(day.differences.values_list("kind", "outcome")) == {
        Kind.DUPLICATE: Outcome.INCIDENT,
        Kind.MISSED_PAYMENT: Outcome.SETTLED,
    }
    assert balance(payer) == 1000 and ledger_rows() == 1


@pytest.mark.parametrize("bad", ["malformed", "smuggled field", "summary"])
def test_a_bill_that_does_not_verify_applies_nothing_and_a_later_run_completes(wechat, payer, bad):
    order = pending(payer, 1000, AT)
    good = billed(order, txn=transaction_id())
    wechat.bills[DAY] = {
        "malformed": bill(line(good).replace("`SUCCESS", "SUCCESS"), summary=summary_of([good])),
        "smuggled field": bill(line({**good, "商户数据包": "a,`b"}), summary=summary_of([good])),
        "summary": bill(good, summary=summary_of([good], 应结订单总金额="100.00")),
    }[bad]
    day = reconcile_day(DAY)
    assert day.status == Status.INVALID and day.reason == day.last_error
    assert ("第 2 行" if bad != "summary" else "汇总与明细不符") in day.reason
    assert day.rows.count() == 0 and day.differences.count() == 0 and day.wechat_paid is None
    assert balance(payer) == 0 and ledger_rows() == 0 and not Incident.objects.exists()

    wechat.bills[DAY] = bill(good)
    day = reconcile_day(DAY)
    assert day.status == Status.DIFFERENCES and day.last_error == "" and balance(payer) == 1000


def test_a_v3_bill_whose_sha1_does_not_match_is_invalid(wechat, payer):
    paid(payer, 1000, AT)
    wechat.bills[DAY] = WeChatError("tradebill download: the SHA1 does not match", "BAD_BILL", retryable=True)
    day = reconcile_day(DAY)
    assert day.status == Status.INVALID and "SHA1" in day.reason and day.rows.count() == 0


def test_a_network_failure_leaves_the_day_failed_and_a_rerun_completes_it(wechat, payer):
    order = pending(payer, 1000, AT)
    wechat.bills[DAY] = WeChatError("pay/downloadbill: ConnectionError", "NETWORK", retryable=True)
    day = reconcile_day(DAY)
    assert day.status == Status.FAILED and day.reason == "NETWORK：pay/downloadbill: ConnectionError"
    assert balance(payer) == 0 and not day.differences.exists()
    wechat.bills[DAY] = bill(billed(order, txn=transaction_id()))
    assert reconcile_day(DAY).status == Status.DIFFERENCES and balance(payer) == 1000


def test_a_failed_rerun_keeps_the_days_result(wechat, payer):
    order = paid(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order))
    reconcile_day(DAY)
    wechat.bills[DAY] = WeChatError("timeout", "NETWORK", retryable=True)
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.last_error == "NETWORK：timeout" and day.rows.count() == 1
    assert "最近一次重新对账失败（保留上次结果）：NETWORK：timeout" in summary(day)


def test_a_bill_not_ready_leaves_the_day_pending_and_a_later_run_completes_it(wechat, payer):
    order = paid(payer, 1000, AT)
    day = reconcile_day(DAY)  # WeChat: No Bill Exist, though we have a payment that day
    assert day.status == Status.PENDING and "微信说该日没有账单" in day.reason and "1 笔支付" in day.reason
    assert summary(day).startswith("2026-11-23: 未就绪 — 微信说该日没有账单")
    assert day.wechat_paid is None and not day.differences.exists()
    assert (day.our_paid_count, day.our_paid) == (1, 1000)  # what the missing bill should hold
    wechat.bills[DAY] = bill(billed(order))
    assert reconcile_day(DAY).status == Status.BALANCED


def test_before_ten_the_next_day_no_bill_is_only_not_ready(wechat):
    with time_machine.travel(datetime(2026, 11, 24, 9, 0, tzinfo=BEIJING), tick=False):
        day = reconcile_day(DAY)
    assert day.status == Status.PENDING and day.reason.startswith("微信尚未生成该日账单")


def test_a_bill_still_being_made_is_not_ready(wechat):
    wechat.bills[DAY] = no_bill("tradebill: STATEMENT_CREATING")
    wechat.bills[DAY].code = "STATEMENT_CREATING"
    assert reconcile_day(DAY).status == Status.PENDING


def test_a_day_with_nothing_on_either_side_is_balanced_at_zero(wechat, payer):
    paid(payer, 1000, AT - timedelta(days=3))  # an earlier order: the day is not before the first
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and day.reason == "微信无该日账单，本站当日也无支付和退款"
    assert (day.wechat_count, day.wechat_paid, day.our_paid) == (0, 0, 0)


def test_a_day_before_the_first_order_without_a_bill_is_balanced_and_says_so(wechat, payer):
    paid(payer, 1000, AT + timedelta(hours=30))
    day = reconcile_day(DAY - timedelta(days=5))
    assert day.status == Status.BALANCED
    assert day.reason == "该日早于本站第一笔订单（2026-11-24），微信也无该日账单"


def test_a_day_before_the_first_order_with_a_bill_is_compared_as_usual(wechat):
    early = DAY - timedelta(days=5)
    wechat.bills[early] = bill(
        pay_row("20261118120000109999999999", 500, transaction_id(), datetime(2026, 11, 18, 12, 0, tzinfo=BEIJING))
    )
    day = reconcile_day(early)
    assert day.status == Status.DIFFERENCES and only_difference(day).kind == Kind.UNKNOWN_ORDER
    assert "该日早于本站第一笔订单（本站尚无订单）" in day.reason


@pytest.mark.parametrize(("when", "message"), [(DAY + timedelta(days=1), "是今天"), (DAY + timedelta(days=2), "在未来")])
def test_today_and_future_days_are_refused_and_nothing_is_stored(wechat, when, message):
    with pytest.raises(DateRefused, match=message):
        reconcile_day(when)
    assert not BillDay.objects.exists() and wechat.calls == []


def test_a_day_another_runner_holds_is_left_to_it(wechat, payer):
    day = BillDay.for_date(DAY)
    assert day.claim(timedelta(minutes=10))
    with pytest.raises(DayBusy):
        reconcile_day(DAY)
    assert wechat.calls == []
    day.release()
    assert reconcile_day(DAY).status == Status.BALANCED


def test_a_claim_left_by_a_runner_that_died_expires(wechat, clock):
    BillDay.for_date(DAY).claim(timedelta(minutes=10))
    clock.shift(timedelta(minutes=11))
    assert reconcile_day(DAY).status == Status.BALANCED


def test_a_runner_that_outlived_its_claim_leaves_the_runner_that_took_over_its_claim(wechat, clock):
    slow = BillDay.for_date(DAY)
    assert slow.claim(timedelta(minutes=10))
    clock.shift(timedelta(minutes=11))
    successor = BillDay.for_date(DAY)
    assert successor.claim(timedelta(minutes=10))
    slow.release()  # the first runner finishes late
    with pytest.raises(DayBusy):
        reconcile_day(DAY)  # a third runner still finds the day taken
    successor.release()
    assert reconcile_day(DAY).status == Status.BALANCED


def test_an_incident_resolved_by_an_operator_is_not_opened_again_by_a_rerun(wechat, payer):
    wechat.bills[DAY] = bill(pay_row("20261123120000109999999999", 500, transaction_id(), AT))
    incident = only_difference(reconcile_day(DAY)).incident
    incident.resolve(None, "已联系微信")
    reconcile_day(DAY)
    assert Incident.objects.count() == 1 and only_difference(BillDay.objects.get()).incident == incident


def test_a_rerun_after_the_books_changed_drops_what_no_longer_differs(wechat, payer):
    from payments import services

    order = pending(payer, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, amount=1000, txn=transaction_id(), 公众账号ID="wxforeign0000000001"))
    assert only_difference(reconcile_day(DAY)).kind == Kind.MERCHANT
    # The notify arrives after all, and WeChat publishes a corrected bill.
    txn = transaction_id()
    services.apply_payment(order.out_trade_no, txn, 1000, AT)
    wechat.bills[DAY] = bill(billed(order, txn=txn))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and not day.differences.exists()


def test_the_rows_of_a_verified_bill_replace_the_previous_ones(wechat, payer):
    a, b = paid(payer, 1000, AT), paid(payer, 2000, AT)
    wechat.bills[DAY] = bill(billed(a))
    reconcile_day(DAY)
    wechat.bills[DAY] = bill(billed(a), billed(b))
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and BillRow.objects.count() == 2
    assert BillRow.objects.aggregate(total=Sum("amount"))["total"] == 3000


# -- the loop's days -----------------------------------------------------------------------------


def test_the_loop_takes_the_days_of_the_last_week_that_are_ready_and_not_done(wechat):
    BillDay.objects.create(date=date(2026, 11, 20), status=Status.BALANCED)
    BillDay.objects.create(date=date(2026, 11, 21), status=Status.DIFFERENCES)
    BillDay.objects.create(date=date(2026, 11, 22), status=Status.FAILED)
    assert due_days() == [date(2026, 11, 17), date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 22), DAY]
    before_ten = datetime(2026, 11, 24, 9, 59, tzinfo=BEIJING)
    assert due_days(before_ten)[-1] == date(2026, 11, 22)

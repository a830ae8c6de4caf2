"""Reconciliation end to end, under both API versions: orders placed through the site, paid
and refunded at the sandbox over real HTTP, the sandbox's own trade bill downloaded by the
payment interface (v2 downloadbill, v3 tradebill + signed download + SHA1) and checked by
reconciliation.services.reconcile_day. The bill switches of the sandbox (devtools/wechat_sandbox/bills.py)
make each kind of difference, and the bad days: a bill that does not verify, one not ready,
a download that fails halfway.

Trades happen today (Beijing); the day is reconciled from 11:00 the next day, when its bill
is ready, by moving the clock forward (time_machine).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from unittest import mock

import pytest
import requests
import time_machine
from django.conf import settings

from accounts.models import User
from devtools.wechat_sandbox import bills
from devtools.wechat_sandbox.models import Fault
from devtools.wechat_sandbox.models import Refund as SandboxRefund
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import services as payment_services
from payments.models import Incident
from reconciliation.models import BillDay, BillRow, Difference
from reconciliation.services import reconcile_day, summary
from tests.admin import paid_at_sandbox, pay_at_sandbox, placed_at_sandbox
from tests.helpers import clear_of_midnight
from tests.payments.conftest import settle_sandbox_refunds
from tests.reconciliation.books import snapshot
from wxproto.beijing import BEIJING

pytestmark = pytest.mark.django_db(transaction=True)
Kind, Outcome, Status = Difference.Kind, Difference.Outcome, BillDay.Status


@pytest.fixture(params=["v2", "v3"])
def api(request, settings, sandbox_url):
    """The API version the site talks to WeChat with, for the whole test (orders, refunds, the bill)."""
    settings.WECHAT_PAY_API = request.param
    return request.param


@pytest.fixture
def day(api):
    """Today in Beijing, the day the trades happen on (clear of midnight)."""
    with clear_of_midnight() as today:
        yield today


def reconcile(day) -> BillDay:
    """Reconcile `day` at 11:00 the next day, when WeChat has its bill."""
    with time_machine.travel(datetime.combine(day + timedelta(days=1), time(11, 0), tzinfo=BEIJING), tick=True):
        return reconcile_day(day)


def paid_without_notify(payer: User, amount: str = "10.00") -> RechargeOrder:
    """Paid at WeChat, but its notify never arrives and nobody asks: still pending here."""
    order = placed_at_sandbox(payer, amount)
    Fault.objects.update_or_create(out_trade_no=order.out_trade_no, defaults={"drop_notifies": 10})
    pay_at_sandbox(order)
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING
    return order


def refunded(order: RechargeOrder, amount: int, sync: bool = True) -> Refund:
    """An operator's refund, settled at WeChat; and here too (refundquery) with `sync`."""
    refund = payment_services.request_refund(order, amount, "测试退款")
    assert settle_sandbox_refunds() == 1
    if sync:
        refund = payment_services.sync_refund(refund)
        assert refund.status == Refund.Status.SUCCESS
    refund.refresh_from_db()
    return refund


def balance(user: User) -> int:
    user.refresh_from_db()
    return user.balance


def differences(bill_day: BillDay) -> list[tuple[str, str, str]]:
    return sorted(bill_day.differences.values_list("kind", "outcome", "out_trade_no"))


def test_a_clean_day_is_balanced_and_shows_both_totals(api, day, payer):
    a = paid_at_sandbox(payer, "10.00")
    b = paid_at_sandbox(payer, "25.50")
    r = refunded(a, 300)
    bill_day = reconcile(day)
    assert bill_day.status == Status.BALANCED, bill_day.reason
    assert bill_day.api == api and bill_day.reason == "" and bill_day.last_error == ""
    assert (
        bill_day.wechat_count,
        bill_day.wechat_paid_count,
        bill_day.wechat_paid,
        bill_day.wechat_refund_count,
        bill_day.wechat_refunded,
        bill_day.wechat_fee_millifen,
    ) == (3, 2, 3550, 1, 300, (6 + 15 - 2) * 1000)
    assert (bill_day.our_paid_count, bill_day.our_paid, bill_day.our_refund_count, bill_day.our_refunded) == (2, 3550, 1, 300)
    assert [(t["label"], t["wechat"], t["ours"], t["differs"]) for t in bill_day.totals()] == [
        ("总交易单数", "3 笔", "3 笔", False),
        ("支付笔数", "2 笔", "2 笔", False),
        ("支付金额", "¥35.50", "¥35.50", False),
        ("退款笔数", "1 笔", "1 笔", False),
        ("退款金额", "¥3.00", "¥3.00", False),
        ("手续费", "¥0.19", "-", False),
    ]
    assert not bill_day.differences.exists()
    assert sorted(BillRow.objects.values_list("out_trade_no", "kind", "transaction_id")) == sorted(
        [
            (a.out_trade_no, "payment", a.transaction_id),
            (b.out_trade_no, "payment", b.transaction_id),
            (a.out_trade_no, "refund", a.transaction_id),
        ]
    )
    assert BillRow.objects.get(kind="refund").out_refund_no == r.out_refund_no
    assert summary(bill_day).startswith(
        f"{day.isoformat()}: 已平 — WeChat 2 笔 ¥35.50 退款 ¥3.00 手续费 ¥0.19; ours 2 笔 ¥35.50 退款 ¥3.00; differences 0"
    )


def test_bonus_is_not_wechat_money_only_paid_amounts_are_compared(api, day, payer):
    """充100送20 paid, ¥60 spent, the unspent ¥50 refunded with the ¥10 bonus removed: WeChat's
    bill has ¥100 paid and ¥50 refunded, and so do the books; the bonus is in neither."""
    from offers.models import Package
    from wallet.models import Charge

    package = Package.objects.create(name="充100送20", price=10000, bonus=2000)
    order = placed_at_sandbox(payer, package=package.pk)
    pay_at_sandbox(order)
    order = payment_services.sync_order(order)
    assert balance(payer) == 12000
    Charge.create(amount=6000, user_id=payer.pk)
    refunded(order, order.refundable_amount())
    assert balance(payer) == 0
    bill_day = reconcile(day)
    assert bill_day.status == Status.BALANCED, bill_day.reason
    assert (bill_day.wechat_paid, bill_day.our_paid, bill_day.wechat_refunded, bill_day.our_refunded) == (
        10000,
        10000,
        5000,
        5000,
    )
    assert not bill_day.differences.exists()


def test_a_lost_notify_is_settled_by_the_bill_exactly_once(api, day, payer):
    order = paid_without_notify(payer, "12.34")
    ledger = LedgerEntry.objects.count()
    bill_day = reconcile(day)
    assert bill_day.status == Status.DIFFERENCES
    assert differences(bill_day) == [(Kind.MISSED_PAYMENT, Outcome.SETTLED, order.out_trade_no)]
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id
    assert balance(payer) == 1234 and LedgerEntry.objects.count() == ledger + 1
    assert (bill_day.our_paid_count, bill_day.our_paid) == (1, 1234) and not Incident.objects.exists()
    before = snapshot()
    again = reconcile(day)
    assert snapshot() == before and again.status == Status.DIFFERENCES and again.attempts == 2
    # The notify or a query that comes later changes nothing either.
    assert payment_services.sync_order(order).status == RechargeOrder.Status.PAID
    assert balance(payer) == 1234 and LedgerEntry.objects.count() == ledger + 1


def test_a_payment_wechat_left_out_of_the_bill_is_an_incident(api, day, payer):
    paid_at_sandbox(payer, "10.00")  # stays in the bill
    omitted = paid_at_sandbox(payer, "20.00")
    Fault.objects.create(out_trade_no=omitted.out_trade_no, bill_omit=True)
    before = snapshot()
    bill_day = reconcile(day)
    assert bill_day.status == Status.DIFFERENCES
    assert differences(bill_day) == [(Kind.MISSING_PAYMENT, Outcome.INCIDENT, omitted.out_trade_no)]
    incident = Incident.objects.get()
    assert incident.kind == Incident.Kind.BILL_MISSING_PAYMENT and incident.order_id == omitted.pk
    assert "微信无此支付" in incident.get_kind_display()
    assert (bill_day.wechat_paid, bill_day.our_paid) == (1000, 3000)
    after = snapshot()
    assert (after["ledger"], after["balances"], after["orders"]) == (before["ledger"], before["balances"], before["orders"])


def test_another_amount_in_the_bill_is_an_incident_and_changes_nothing(api, day, payer):
    order = paid_at_sandbox(payer, "10.00")
    Fault.objects.create(out_trade_no=order.out_trade_no, bill_total_fee=1200)
    before = snapshot()
    bill_day = reconcile(day)
    assert differences(bill_day) == [(Kind.AMOUNT, Outcome.INCIDENT, order.out_trade_no)]
    difference = bill_day.differences.get()
    assert (difference.wechat_amount, difference.our_amount) == (1200, 1000)
    assert Incident.objects.get().kind == Incident.Kind.BILL_AMOUNT
    assert (bill_day.wechat_paid, bill_day.our_paid, bill_day.wechat_fee_millifen) == (1200, 1000, 7000)
    after = snapshot()
    assert (after["ledger"], after["balances"], after["orders"]) == (before["ledger"], before["balances"], before["orders"])
    assert balance(payer) == 1000


def test_a_trade_we_never_placed_is_an_unknown_order_incident(api, day, payer):
    paid_at_sandbox(payer, "10.00")
    Fault.objects.create(out_trade_no="", bill_add_unknown_trade=True)
    before = snapshot()
    bill_day = reconcile(day)
    unknown, transaction_id = bills.unknown_ids(settings.WECHAT_MCH_ID, day)
    assert differences(bill_day) == [(Kind.UNKNOWN_ORDER, Outcome.INCIDENT, unknown)]
    difference = bill_day.differences.get()
    assert (difference.transaction_id, difference.wechat_amount, difference.order_id) == (
        transaction_id,
        bills.UNKNOWN_TRADE_FEN,
        None,
    )
    assert Incident.objects.get().kind == Incident.Kind.BILL_UNKNOWN_ORDER
    assert (bill_day.wechat_paid_count, bill_day.our_paid_count) == (2, 1)
    assert snapshot()["ledger"] == before["ledger"]
    # A rerun finds the same made-up trade: the same difference, no second incident.
    before = snapshot()
    reconcile(day)
    assert snapshot() == before


def test_a_refund_settled_at_wechat_but_processing_here_is_settled_by_the_bill(api, day, payer):
    order = paid_at_sandbox(payer, "10.00")
    Fault.objects.create(out_trade_no=order.out_trade_no, drop_notifies=10)
    refund = refunded(order, 400, sync=False)
    assert refund.status == Refund.Status.PROCESSING and balance(payer) == 600
    assert SandboxRefund.objects.get().state == SandboxRefund.SUCCESS
    bill_day = reconcile(day)
    assert bill_day.status == Status.DIFFERENCES
    assert list(bill_day.differences.values_list("kind", "outcome", "out_refund_no")) == [
        (Kind.UNSETTLED_REFUND, Outcome.SETTLED, refund.out_refund_no)
    ]
    refund.refresh_from_db()
    # Settled when the bill said so: the bill has no success time.
    assert refund.status == Refund.Status.SUCCESS and refund.settled_at > SandboxRefund.objects.get().success_time
    assert balance(payer) == 600 and not Incident.objects.exists()
    assert (bill_day.wechat_refunded, bill_day.our_refunded, bill_day.our_refund_count) == (400, 400, 1)
    before = snapshot()
    reconcile(day)
    assert snapshot() == before


def test_a_duplicate_row_is_reported_and_compared_once(api, day, payer):
    order = paid_at_sandbox(payer, "10.00")
    Fault.objects.create(out_trade_no=order.out_trade_no, bill_duplicate_row=True)
    before = snapshot()
    bill_day = reconcile(day)
    assert differences(bill_day) == [(Kind.DUPLICATE, Outcome.INCIDENT, order.out_trade_no)]
    assert Incident.objects.get().kind == Incident.Kind.BILL_DUPLICATE
    assert (bill_day.wechat_count, bill_day.wechat_paid, bill_day.our_paid) == (2, 2000, 1000)
    assert list(BillRow.objects.order_by("line_no").values_list("duplicate", flat=True)) == [False, True]
    after = snapshot()
    assert (after["ledger"], after["balances"], after["orders"]) == (before["ledger"], before["balances"], before["orders"])


def test_a_bill_whose_summary_does_not_add_up_applies_nothing_until_a_good_one_comes(api, day, payer):
    order = paid_without_notify(payer)
    Fault.objects.create(out_trade_no="", bill_corrupt_summary=True)
    bill_day = reconcile(day)
    assert bill_day.status == Status.INVALID
    assert "汇总与明细不符" in bill_day.reason and "应结订单总金额 10.01，明细合计 10.00" in bill_day.reason
    assert not BillRow.objects.exists() and not bill_day.differences.exists() and bill_day.wechat_paid is None
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and balance(payer) == 0
    Fault.objects.filter(out_trade_no="").update(bill_corrupt_summary=False)
    bill_day = reconcile(day)
    assert bill_day.status == Status.DIFFERENCES and bill_day.reason == "" and bill_day.last_error == ""
    assert differences(bill_day) == [(Kind.MISSED_PAYMENT, Outcome.SETTLED, order.out_trade_no)]
    assert balance(payer) == 1000


def test_a_bill_not_ready_leaves_the_day_pending_and_a_later_run_completes_it(api, day, payer):
    paid_at_sandbox(payer, "10.00")
    Fault.objects.create(out_trade_no="", bill_not_ready=True)
    bill_day = reconcile(day)
    assert bill_day.status == Status.PENDING and "稍后会再试" in bill_day.reason
    assert not BillRow.objects.exists() and bill_day.wechat_paid is None
    Fault.objects.filter(out_trade_no="").update(bill_not_ready=False)
    bill_day = reconcile(day)
    assert bill_day.status == Status.BALANCED and bill_day.reason == "" and bill_day.attempts == 2


def test_a_download_that_fails_halfway_applies_nothing_and_a_rerun_completes(api, day, payer):
    """v3: tradebill answers, then the bill's download fails; v2: downloadbill fails."""
    order = paid_without_notify(payer)
    send = requests.Session.send
    asked: list[str] = []

    def flaky(session, request, **kwargs):
        asked.append(request.url)
        if "billdownload" in request.url or "downloadbill" in request.url:
            raise requests.ConnectionError("connection reset by peer")
        return send(session, request, **kwargs)

    with mock.patch.object(requests.Session, "send", autospec=True, side_effect=flaky):
        bill_day = reconcile(day)
    assert bill_day.status == Status.FAILED and "NETWORK" in bill_day.reason
    if api == "v3":
        assert ["/v3/bill/tradebill" in url for url in asked] == [True, False]
    else:
        assert len(asked) == 1 and asked[0].endswith("/pay/downloadbill")
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and balance(payer) == 0
    assert not BillRow.objects.exists() and not bill_day.differences.exists()
    bill_day = reconcile(day)
    assert bill_day.status == Status.DIFFERENCES and bill_day.last_error == ""
    assert differences(bill_day) == [(Kind.MISSED_PAYMENT, Outcome.SETTLED, order.out_trade_no)]
    assert balance(payer) == 1000


def test_a_refund_still_processing_when_the_bill_was_cut_is_no_difference_before_or_after_it_succeeds(api, day, payer):
    """The sandbox cuts the bill at 09:00 the next day, as WeChat does: a refund that was not
    finished by then stays PROCESSING in that bill for good. Reconciled before and after it
    succeeded, the day stays 已平 and says why WeChat's refund total includes it."""
    order = paid_at_sandbox(payer, "10.00")
    refund = payment_services.request_refund(order, 400, "测试退款")
    first = reconcile(day)
    assert first.status == Status.BALANCED and not first.differences.exists(), summary(first)
    assert (first.wechat_refunded, first.our_refunded, first.wechat_in_flight_count, first.wechat_in_flight) == (400, 400, 1, 400)
    assert BillRow.objects.get(kind="refund").refund_status == "PROCESSING"
    with time_machine.travel(datetime.combine(day + timedelta(days=1), time(10, 30), tzinfo=BEIJING), tick=True):
        assert settle_sandbox_refunds() == 1
        assert payment_services.sync_refund(refund).status == Refund.Status.SUCCESS
    again = reconcile(day)
    assert again.status == Status.BALANCED and not again.differences.exists() and not Incident.objects.exists()
    assert BillRow.objects.get(kind="refund").refund_status == "PROCESSING"  # WeChat never updates it
    assert summary(again) == summary(first)

"""Two reconcilers (or a reconciler and a late notify) on one day at once, on PostgreSQL (row
locks across real connections): nothing is settled twice."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import pytest

from orders.models import LedgerEntry, RechargeOrder
from payments import services as payment_services
from reconciliation.models import BillDay, Difference
from reconciliation.services import DayBusy, reconcile_day
from tests.helpers import NEEDS_ROW_LOCKS, race
from tests.reconciliation.bills import BEIJING, bill, pay_row, refund_row
from tests.reconciliation.books import paid, pending, refund, transaction_id
from tests.reconciliation.conftest import DAY

pytestmark = [*NEEDS_ROW_LOCKS, pytest.mark.django_db(transaction=True)]
AT = datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING)


@pytest.fixture(autouse=True)
def _now(clock):
    pass


@pytest.fixture
def lost(wechat, payer):
    """A payment WeChat took whose notify never came, and a refund WeChat finished that is still 处理中 here."""
    order = pending(payer, 1990, AT)
    done = paid(payer, 1000, AT)
    item = refund(done, 400)
    txn = transaction_id()
    wechat.bills[DAY] = bill(
        pay_row(order.out_trade_no, 1990, txn, AT),
        pay_row(done.out_trade_no, 1000, done.transaction_id, AT),
        refund_row(done.out_trade_no, done.transaction_id, item.out_refund_no, item.refund_id, 400, AT.replace(hour=13)),
    )
    return order, txn, payer


def assert_settled_once(order, payer):
    order.refresh_from_db()
    payer.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID
    assert LedgerEntry.objects.filter(order=order).count() == 1
    assert payer.balance == 1990 + 1000 - 400
    assert sorted(Difference.objects.values_list("kind", "outcome")) == [
        ("missed_payment", "settled"),
        ("unsettled_refund", "settled"),
    ]


def test_two_runs_of_one_day_at_once_settle_once(lost):
    order, _, payer = lost
    results = race([lambda: reconcile_day(DAY), lambda: reconcile_day(DAY)])
    assert all(isinstance(r, (BillDay, DayBusy)) for r in results), results
    assert any(isinstance(r, BillDay) for r in results)
    assert_settled_once(order, payer)
    assert BillDay.objects.get().status == BillDay.Status.DIFFERENCES


def test_without_the_days_claim_the_books_still_settle_once(lost):
    """Even if two runners got past the claim (one presumed dead, and never noticing that it
    was taken over), the money moves once."""
    order, _, payer = lost
    with mock.patch.object(BillDay, "claim", return_value=True), mock.patch.object(BillDay, "renew"):
        results = race([lambda: reconcile_day(DAY)] * 4)
    assert all(isinstance(r, BillDay) for r in results), results
    assert_settled_once(order, payer)


def test_a_notify_racing_the_reconciler_credits_once(lost):
    order, txn, payer = lost
    results = race([lambda: reconcile_day(DAY), lambda: payment_services.apply_payment(order.out_trade_no, txn, 1990, AT)])
    assert not any(isinstance(r, Exception) for r in results), results
    order.refresh_from_db()
    assert LedgerEntry.objects.filter(order=order).count() == 1
    payer.refresh_from_db()
    assert payer.balance == 1990 + 1000 - 400
    # Whoever came second found it paid: at most one settled record of it, never an incident.
    assert Difference.objects.filter(kind="missed_payment").count() <= 1
    assert not Difference.objects.filter(outcome="incident").exists()

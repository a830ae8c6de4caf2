"""A day's bill is streamed: stored in bulk as it is read, in one transaction (a bill refused at
any line, or a runner that dies half way, leaves nothing of it), compared in the database, and
the runner's claim on the day is renewed while it works, so that a runner that was too slow
and lost the day to another stops instead of finishing it twice."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import pytest

from orders.models import LedgerEntry, RechargeOrder
from reconciliation import models as reconciliation_models
from reconciliation.models import BillDay, BillRow, Difference
from reconciliation.services import CLAIM_DURATION, DayBusy, reconcile_day
from tests.reconciliation.bills import BEIJING, bill, line, pay_row, refund_row
from tests.reconciliation.books import paid, pending, refund, transaction_id
from tests.reconciliation.conftest import DAY
from wxproto import bill as wxbill

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING)
Kind, Outcome, Status = Difference.Kind, Difference.Outcome, BillDay.Status
TAKEN_UNTIL = datetime(2026, 11, 24, 11, 9, 30, tzinfo=BEIJING)  # another runner's claim


@pytest.fixture(autouse=True)
def _now(clock):
    pass


def many_payments(payer, count: int) -> list[dict]:
    """`count` orders paid here and billed alike (the lines of a busy day)."""
    return [pay_row(o.out_trade_no, o.amount, o.transaction_id, AT) for o in (paid(payer, 100, AT) for _ in range(count))]


def test_a_day_of_many_lines_is_stored_in_batches_with_its_repeated_trades_marked_and_its_claim_renewed(
    wechat, payer, monkeypatch
):
    monkeypatch.setattr(reconciliation_models, "INSERT_BATCH", 7)
    monkeypatch.setattr(reconciliation_models, "RENEW_ROWS", 10)
    rows = many_payments(payer, 30)
    lost = pending(payer, 990, AT)
    lost_line = pay_row(lost.out_trade_no, 990, transaction_id(), AT)
    # A trade repeated far from its first line (another batch), and repeated twice.
    wechat.bills[DAY] = bill(*rows[:20], lost_line, rows[3], *rows[20:], rows[3], rows[25])
    renewals = []
    real_renew = BillDay.renew

    def counted(self, duration):
        renewals.append(duration)
        return real_renew(self, duration)

    with mock.patch.object(BillDay, "renew", counted):
        day = reconcile_day(DAY)
    assert BillRow.objects.filter(bill_day=day).count() == 34
    assert sorted(BillRow.objects.filter(duplicate=True).values_list("line_no", flat=True)) == [23, 34, 35]
    assert day.wechat_paid_count == 34 and day.wechat_paid == 30 * 100 + 990 + 3 * 100
    kinds = sorted(day.differences.values_list("kind", "outcome", "out_trade_no"))
    assert kinds == sorted(
        [
            (Kind.DUPLICATE, Outcome.INCIDENT, rows[3]["商户订单号"]),
            (Kind.DUPLICATE, Outcome.INCIDENT, rows[25]["商户订单号"]),
            (Kind.MISSED_PAYMENT, Outcome.SETTLED, lost.out_trade_no),
        ]
    )
    # Renewed every 10 lines while storing, and around the download and the comparison.
    assert len(renewals) >= 34 // 10 + 3 and set(renewals) == {CLAIM_DURATION}
    assert BillDay.objects.get().claimed_until is None  # released when done


def test_a_bill_refused_at_a_line_in_the_middle_stores_nothing_and_the_day_keeps_its_result(wechat, payer, monkeypatch):
    monkeypatch.setattr(reconciliation_models, "INSERT_BATCH", 5)
    rows = many_payments(payer, 12)
    wechat.bills[DAY] = bill(*rows)
    assert reconcile_day(DAY).status == Status.BALANCED
    stored = list(BillRow.objects.values_list("pk", flat=True))
    bad = line(rows[6]).replace("`1.00", "`1.0O")
    wechat.bills[DAY] = bill(*rows[:6], bad, *rows[7:], summary=None)
    day = reconcile_day(DAY)
    assert day.status == Status.BALANCED and "第 8 行" in day.last_error and "不是有效金额" in day.last_error
    assert list(BillRow.objects.values_list("pk", flat=True)) == stored  # the earlier bill's rows, untouched


def test_a_runner_that_dies_half_way_through_a_day_leaves_nothing_and_a_rerun_completes_it_once(wechat, payer, monkeypatch):
    monkeypatch.setattr(reconciliation_models, "INSERT_BATCH", 4)
    rows = many_payments(payer, 10)
    lost = pending(payer, 1990, AT)
    wechat.bills[DAY] = bill(*rows, pay_row(lost.out_trade_no, 1990, transaction_id(), AT))
    real_iter = wxbill.Reader.__iter__

    def dies_after_six(self):
        for n, row in enumerate(real_iter(self), 1):
            if n == 7:
                raise SystemExit("killed")
            yield row

    with mock.patch.object(wxbill.Reader, "__iter__", dies_after_six), pytest.raises(SystemExit):
        reconcile_day(DAY)
    assert not BillRow.objects.exists() and not Difference.objects.exists()
    assert RechargeOrder.objects.get(pk=lost.pk).status == RechargeOrder.Status.PENDING
    # A killed process releases nothing: its claim stays until it expires.
    BillDay.objects.update(claimed_until=datetime(2026, 11, 24, 11, 5, tzinfo=BEIJING))
    with pytest.raises(DayBusy):
        reconcile_day(DAY)
    BillDay.objects.update(claimed_until=datetime(2026, 11, 24, 10, 59, tzinfo=BEIJING))  # expired
    day = reconcile_day(DAY)
    assert day.status == Status.DIFFERENCES and BillRow.objects.count() == 11
    assert [d.kind for d in day.differences.all()] == [Kind.MISSED_PAYMENT]
    assert LedgerEntry.objects.filter(order=lost).count() == 1
    reconcile_day(DAY)  # and again: nothing twice
    assert LedgerEntry.objects.filter(order=lost).count() == 1


def test_a_runner_whose_claim_was_taken_over_stops_without_storing_or_applying_anything(wechat, payer):
    lost = pending(payer, 500, AT)
    wechat.bills[DAY] = bill(pay_row(lost.out_trade_no, 500, transaction_id(), AT))
    real_download = wechat.download_bill_to

    def slow_download(provider, day, out):
        # While this runner downloads, its claim expires and another runner claims the day.
        BillDay.objects.update(claimed_until=TAKEN_UNTIL)
        real_download(provider, day, out)

    from payments.providers.wechat_v2 import WeChatV2
    from payments.providers.wechat_v3 import WeChatV3

    WeChatV2.download_bill_to.mock.side_effect = WeChatV3.download_bill_to.mock.side_effect = slow_download
    with pytest.raises(DayBusy, match="另一个进程接手"):
        reconcile_day(DAY)
    assert not BillRow.objects.exists() and not Difference.objects.exists()
    assert RechargeOrder.objects.get(pk=lost.pk).status == RechargeOrder.Status.PENDING
    # The other runner's claim is left as it is.
    assert BillDay.objects.get().claimed_until == TAKEN_UNTIL


def test_refund_lines_are_compared_in_the_database_like_payment_lines(wechat, payer):
    """Matching refund lines stay in the database; only those that differ come back."""
    done = paid(payer, 1000, AT)
    good = refund(done, 100, settled_at=AT.replace(hour=13))
    odd = refund(done, 200, settled_at=AT.replace(hour=13))
    wechat.bills[DAY] = bill(
        pay_row(done.out_trade_no, 1000, done.transaction_id, AT),
        refund_row(done.out_trade_no, done.transaction_id, good.out_refund_no, good.refund_id, 100, good.accepted_at),
        refund_row(done.out_trade_no, done.transaction_id, odd.out_refund_no, odd.refund_id, 250, odd.accepted_at),
    )
    day = reconcile_day(DAY)
    assert list(day.differences.values_list("kind", "out_refund_no")) == [(Kind.REFUND_AMOUNT, odd.out_refund_no)]

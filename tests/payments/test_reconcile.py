"""sweep_orders: every pending order reaches an end, every refund an outcome (sandbox over HTTP)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import services
from payments.models import Notification
from payments.sweeper import PENDING_GRACE, run_pass
from tests.factories import make_order, make_user
from tests.helpers import notify_xml, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def place(client, sandbox_url):
    """Place an order at the sandbox through the page API; `age` moves its creation back in time."""
    user = make_user("late", openid="oLate0000000000000000000001")
    client.force_login(user)

    def make(amount: str = "10.00", age: timedelta = PENDING_GRACE, expired: bool = False) -> RechargeOrder:
        body = client.post("/payments/jsapi/prepay/", {"amount": amount}, content_type="application/json").json()
        order = RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])
        created = timezone.now() - age - timedelta(seconds=1)
        expires = timezone.now() - timedelta(seconds=1) if expired else order.expires_at
        RechargeOrder.objects.filter(pk=order.pk).update(created_at=created, expires_at=expires)
        Trade.objects.filter(out_trade_no=order.out_trade_no).update(created_at=created)
        order.refresh_from_db()
        return order

    return make


def pay_at_wechat(order: RechargeOrder) -> None:
    trade = Trade.objects.get(out_trade_no=order.out_trade_no)
    sandbox_services.pay(trade.prepay_id, trade.appid)  # no notify is delivered in these tests


def status_of(order: RechargeOrder) -> int:
    order.refresh_from_db()
    return order.status


def test_a_payment_whose_notify_was_lost_is_credited_once(place):
    order = place()
    pay_at_wechat(order)
    result = run_pass()
    assert (result.synced, result.failed) == (1, 0)
    assert status_of(order) == RechargeOrder.Status.PAID
    assert run_pass().synced == 0  # nothing left to do: a rerun changes nothing
    assert LedgerEntry.objects.filter(order=order).count() == 1
    order.user.refresh_from_db()
    assert order.user.balance == 1000


def test_young_pending_orders_are_left_to_their_notify(place):
    order = place(age=timedelta(0))
    pay_at_wechat(order)
    assert run_pass().synced == 0 and status_of(order) == RechargeOrder.Status.PENDING


@pytest.mark.parametrize("end_state", ["PAYERROR"])
def test_an_order_whose_payment_failed_at_wechat_is_closed(place, end_state):
    order = place()
    Fault.objects.create(out_trade_no=order.out_trade_no, end_state=end_state)
    pay_at_wechat(order)
    assert Trade.objects.get(out_trade_no=order.out_trade_no).state == end_state
    run_pass()
    assert status_of(order) == RechargeOrder.Status.CLOSED


def test_an_unpaid_order_still_in_time_stays_pending(place):
    order = place()
    assert run_pass().synced == 1 and status_of(order) == RechargeOrder.Status.PENDING


def test_an_expired_order_is_closed_at_wechat_and_here(place):
    order = place(expired=True)
    result = run_pass()
    assert (result.closed, result.failed) == (1, 0)
    assert status_of(order) == RechargeOrder.Status.CLOSED
    assert Trade.objects.get(out_trade_no=order.out_trade_no).state == Trade.CLOSED


def test_an_expired_order_that_was_paid_after_all_is_credited_not_closed(place):
    order = place(expired=False)
    pay_at_wechat(order)
    RechargeOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    result = run_pass()
    assert (result.closed, result.synced) == (0, 1)
    assert status_of(order) == RechargeOrder.Status.PAID


def test_an_expired_order_that_never_reached_wechat_is_closed_here(sandbox_url, db):
    order = make_order(
        make_user("x", openid="oX"),
        created_at=timezone.now() - timedelta(hours=1),
        expires_at=timezone.now() - timedelta(minutes=30),
    )
    assert run_pass().closed == 1 and status_of(order) == RechargeOrder.Status.CLOSED


def test_one_failing_order_is_counted_and_the_others_go_on(place):
    failing, fine = place("10.00"), place("20.00")
    pay_at_wechat(fine)
    Fault.objects.create(out_trade_no=failing.out_trade_no, systemerror_endpoints="orderquery")
    result = run_pass()
    assert (result.synced, result.failed) == (1, 1)
    assert status_of(fine) == RechargeOrder.Status.PAID and status_of(failing) == RechargeOrder.Status.PENDING


def test_a_claimed_order_is_not_handled_twice_in_one_interval(place):
    order = place()
    pay_at_wechat(order)
    assert order.claim_sync(timedelta(seconds=30))  # another runner took it a moment ago
    assert run_pass().synced == 0 and status_of(order) == RechargeOrder.Status.PENDING


def test_a_notify_left_received_by_a_crash_is_processed_again(place, client):
    order = place()
    pay_at_wechat(order)
    trade = Trade.objects.get(out_trade_no=order.out_trade_no)
    body = notify_xml(order.out_trade_no, 1000, transaction_id=trade.transaction_id)
    # The process died after recording it: the row stays 已接收.
    log = Notification.record(Notification.Kind.PAYMENT, body, "127.0.0.1")
    Notification.objects.filter(pk=log.pk).update(received_at=timezone.now() - timedelta(minutes=10))
    RechargeOrder.objects.filter(pk=order.pk).update(synced_at=timezone.now())  # keep the order query out of it
    result = run_pass()
    assert result.notifies_reprocessed == 1
    log.refresh_from_db()
    assert log.outcome == "applied" and status_of(order) == RechargeOrder.Status.PAID


def test_refunds_still_processing_are_settled_by_refundquery(paid_order):
    order = paid_order("10.00")
    refund = services.request_refund(order, 1000, "用户申请")
    Refund.objects.filter(pk=refund.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    from tests.payments.conftest import settle_sandbox_refunds

    settle_sandbox_refunds()
    result = run_pass()
    assert result.refunds_settled == 1
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS


@pytest.mark.parametrize("name", ["sweep_orders", "reconcile_orders"])  # its former name still works
def test_the_command_ends_each_pass_with_a_count(place, capsys, name):
    place(expired=True)
    paid = place("20.00")
    pay_at_wechat(paid)
    call_command(name)
    out = capsys.readouterr().out
    assert "synced 1, closed 1, refunds settled 0, failed 0" in out


def test_an_abandoned_order_closes_by_itself_under_the_loop_which_stops_on_sigterm(place):
    order = place(expired=True)
    loop = subprocess.Popen(  # as `make run` starts it beside the web server
        [sys.executable, "manage.py", "sweep_orders", "--loop", "--interval", "0.2"],
        cwd=settings.BASE_DIR,
        env=subprocess_env(settings.SITE_URL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while status_of(order) != RechargeOrder.Status.CLOSED and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    assert status_of(order) == RechargeOrder.Status.CLOSED, out + err
    assert loop.returncode == 0, err
    assert "closed 1" in out

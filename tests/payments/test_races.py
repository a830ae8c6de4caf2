"""Races on one order, on PostgreSQL (row locks across real connections)."""

from __future__ import annotations

import pytest

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Trade
from orders.models import LedgerEntry, RechargeOrder
from payments import notifies, services
from payments.models import Notification
from tests.factories import make_user
from tests.helpers import NEEDS_ROW_LOCKS, notify_xml, race, spy_on_order_queries

pytestmark = [*NEEDS_ROW_LOCKS, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def paid_at_wechat(client, sandbox_url):
    """A pending order that WeChat (the sandbox) has already been paid for; no notify delivered yet."""
    user = make_user("racer", openid="oRacer")
    client.force_login(user)
    body = client.post("/payments/jsapi/prepay/", {"amount": "12.34"}, content_type="application/json").json()
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    sandbox_services.pay(trade.prepay_id, trade.appid)
    trade.refresh_from_db()
    return RechargeOrder.objects.get(out_trade_no=body["out_trade_no"]), trade


def assert_credited_once(order):
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID
    assert order.user.balance == order.amount
    assert LedgerEntry.objects.filter(order=order).count() == 1


def test_twenty_identical_notifies_in_parallel_credit_once(paid_at_wechat):
    order, trade = paid_at_wechat
    body = notify_xml(order.out_trade_no, order.amount, transaction_id=trade.transaction_id)
    results = race([lambda: notifies.receive_notify("payment", body, "127.0.0.1").acknowledged] * 20)
    assert results == [True] * 20
    assert_credited_once(order)
    outcomes = sorted(Notification.objects.values_list("outcome", flat=True))
    assert outcomes.count("applied") == 1 and outcomes.count("duplicate") == 19


def test_a_notify_racing_a_status_query_credits_once(paid_at_wechat):
    order, trade = paid_at_wechat
    body = notify_xml(order.out_trade_no, order.amount, transaction_id=trade.transaction_id)

    def query():
        return services.sync_order(RechargeOrder.objects.get(pk=order.pk)).status

    for _ in range(3):  # several rounds make both orders of arrival likely
        results = race([lambda: notifies.receive_notify("payment", body, "127.0.0.1").acknowledged, query, query])
        assert not [r for r in results if isinstance(r, Exception)], results
    assert_credited_once(order)


def test_a_late_notify_after_the_status_query_changes_nothing(paid_at_wechat):
    order, trade = paid_at_wechat
    services.sync_order(order)
    assert_credited_once(order)
    ledger_before = list(LedgerEntry.objects.values_list("pk", "amount", "balance_after"))
    assert (
        notifies.receive_notify(
            "payment", notify_xml(order.out_trade_no, order.amount, transaction_id=trade.transaction_id), "127.0.0.1"
        ).acknowledged
        is True
    )
    assert Notification.objects.get().outcome == "duplicate"
    assert list(LedgerEntry.objects.values_list("pk", "amount", "balance_after")) == ledger_before
    assert_credited_once(order)


def test_two_taps_at_once_make_one_order(client, sandbox_url):
    user = make_user("tapper", openid="oTapper")

    def tap():
        return services.prepay(user, 1000, RechargeOrder.Channel.JSAPI, "127.0.0.1").order.out_trade_no

    results = race([tap] * 5)
    assert len(set(results)) == 1, results
    assert RechargeOrder.objects.filter(user=user).count() == 1


def test_two_operators_refunding_one_order_at_once_make_one_refund(paid_at_wechat):
    from orders.models import Refund, RefundRefused

    order = services.sync_order(paid_at_wechat[0])  # ¥12.34, paid and credited

    def refund():
        try:
            return services.request_refund(RechargeOrder.objects.get(pk=order.pk), 1000, "同时退款")
        except RefundRefused as exc:
            return exc

    results = race([refund, refund])
    assert sorted(type(r).__name__ for r in results) == ["Refund", "RefundRefused"]
    assert Refund.objects.count() == 1
    order.user.refresh_from_db()
    assert order.user.balance == 234


def test_a_double_click_on_the_refund_form_makes_one_refund(paid_at_wechat):
    from orders.models import Refund, RefundRefused

    order = services.sync_order(paid_at_wechat[0])
    number = Refund.new_out_refund_no()

    def submit():
        try:
            return RechargeOrder.objects.get(pk=order.pk).start_refund(300, "双击", out_refund_no=number)
        except RefundRefused as exc:
            return exc

    results = race([submit, submit, submit])
    assert sum(isinstance(r, Refund) for r in results) == 1
    order.user.refresh_from_db()
    assert order.user.balance == 934 and Refund.objects.count() == 1


def test_two_reconcilers_on_the_same_pending_orders_handle_each_once(client, sandbox_url):
    from datetime import timedelta

    from django.utils import timezone

    from payments.sweeper import run_pass

    user = make_user("many", openid="oMany")
    client.force_login(user)
    orders = []
    for n in range(4):
        body = client.post("/payments/jsapi/prepay/", {"amount": f"{n + 1}.00"}, content_type="application/json").json()
        trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
        sandbox_services.pay(trade.prepay_id, trade.appid)
        orders.append(body["out_trade_no"])
    RechargeOrder.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    with spy_on_order_queries() as query:
        results = race([run_pass, run_pass])
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.synced for r in results) == 4 and sum(r.failed for r in results) == 0
    queried = sorted(call.args[1] for call in query.call_args_list)
    assert queried == sorted(orders)  # each order asked about once, by one of the two
    assert LedgerEntry.objects.count() == 4
    user.refresh_from_db()
    assert user.balance == 1000

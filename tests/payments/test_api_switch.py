"""A merchant switches a running v2 deployment to v3 by changing settings only: what was
placed under v2 still settles afterwards, by its v2 notify or by a v3 query."""

from __future__ import annotations

import pytest

from devtools.wechat_sandbox import delivery
from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Delivery, Fault, Trade
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import services
from payments.models import Notification
from tests.factories import make_user
from tests.payments.conftest import settle_sandbox_refunds


@pytest.fixture
def v2_order(client, sandbox_url, settings):
    """An order placed (and its prepay taken) while the site spoke v2."""
    settings.WECHAT_PAY_API = "v2"
    user = make_user("switcher", openid="oSwitcher0000000000000000001")
    client.force_login(user)
    placed = client.post("/payments/jsapi/prepay/", {"amount": "12.34"}, content_type="application/json")
    assert placed.status_code == 200 and placed.json()["pay_params"]["signType"] == settings.WECHAT_SIGN_TYPE
    return RechargeOrder.objects.get(out_trade_no=placed.json()["out_trade_no"])


def pay_at_wechat(order: RechargeOrder) -> Trade:
    trade = Trade.objects.get(out_trade_no=order.out_trade_no)
    assert sandbox_services.pay(trade.prepay_id, trade.appid) == Trade.SUCCESS
    return trade


def test_an_order_placed_under_v2_settles_by_its_v2_notify_after_the_switch(v2_order, settings):
    settings.WECHAT_PAY_API = "v3"
    pay_at_wechat(v2_order)
    delivery.deliver_due()
    assert Delivery.objects.get().state == Delivery.DELIVERED
    v2_order.refresh_from_db()
    assert v2_order.status == RechargeOrder.Status.PAID and LedgerEntry.objects.count() == 1
    assert Notification.objects.get().api == "v2"


def test_an_order_placed_under_v2_whose_notify_is_lost_settles_by_a_v3_query(v2_order, settings):
    settings.WECHAT_PAY_API = "v3"
    Fault.objects.create(out_trade_no=v2_order.out_trade_no, drop_notifies=20)
    trade = pay_at_wechat(v2_order)
    order = services.sync_order(v2_order)
    trade.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id == trade.transaction_id
    order.user.refresh_from_db()
    assert order.user.balance == 1234 and not Notification.objects.exists()


def test_a_refund_sent_under_v2_settles_by_a_v3_refund_query(v2_order, settings):
    pay_at_wechat(v2_order)
    order = services.sync_order(v2_order)
    refund = services.request_refund(order, 234, "部分退款")
    assert refund.status == Refund.Status.PROCESSING and refund.accepted
    settings.WECHAT_PAY_API = "v3"
    Fault.objects.create(out_trade_no=order.out_trade_no, drop_notifies=20)
    settle_sandbox_refunds()
    refund = services.sync_refund(refund)
    assert refund.status == Refund.Status.SUCCESS
    order.user.refresh_from_db()
    assert order.user.balance == 1000


def test_after_the_switch_new_orders_are_placed_with_v3(v2_order, client, settings):
    settings.WECHAT_PAY_API = "v3"
    placed = client.post("/payments/jsapi/prepay/", {"amount": "5.00"}, content_type="application/json").json()
    assert placed["pay_params"]["signType"] == "RSA"
    assert Trade.objects.get(out_trade_no=placed["out_trade_no"]).notify_url.endswith("/payments/wechat/v3/notify/")

"""Two dead ends of the pay flow, against the sandbox over HTTP (both API versions):

- an order WeChat refused to place is closed at once as 下单失败，未扣款 (history, order page),
  does not count toward the open-order limit, and a tap again is a new order; a call that
  failed on the way (WeChat may have the order) keeps it pending, to be placed again;
- an order WeChat reported paid (a notify or query with another amount, ORDERPAID) that
  could not be credited is 支付已收到，正在确认: never 未扣款, never offered to pay again.
"""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from devtools.wechat_sandbox import delivery
from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import LedgerEntry, RechargeOrder
from payments import services
from payments.models import Incident
from payments.providers.base import WeChatError
from payments.providers.wechat_v2 import WeChatV2
from payments.providers.wechat_v3 import WeChatV3
from tests.factories import make_order
from tests.helpers import wechat_code

pytestmark = pytest.mark.django_db(transaction=True)
PREPAY = "/payments/jsapi/prepay/"


def prepay(client, amount: str):
    return client.post(PREPAY, {"amount": amount}, content_type="application/json")


def page(client, order: RechargeOrder) -> str:
    response = client.get(f"/orders/{order.out_trade_no}/")
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def status(client, order: RechargeOrder, **query) -> dict:
    return client.get(f"/payments/orders/{order.out_trade_no}/status/", query).json()


def provider_class_in_use():
    return WeChatV3 if settings.WECHAT_PAY_API == "v3" else WeChatV2


# -- refused by WeChat --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [{"systemerror_endpoints": "unifiedorder"}, {"corrupt_signature": True}], ids=["systemerror", "bad-signature"]
)
def test_an_order_wechat_refuses_is_closed_at_once_as_refused(payer_client, fault):
    Fault.objects.create(out_trade_no="", **fault)
    response = prepay(payer_client, "10.00")
    assert response.status_code == 502 and response.json()["error"] == "wechat_error"
    assert "未扣款" in response.json()["message"]
    order = RechargeOrder.objects.get()
    assert response.json()["out_trade_no"] == order.out_trade_no
    assert order.status == RechargeOrder.Status.CLOSED and order.is_refused and not order.prepay_id
    expected = (
        wechat_code("SYSTEMERROR", "SYSTEM_ERROR")
        if "systemerror_endpoints" in fault
        else wechat_code("SIGNERROR", "ANSWER_SIGNATURE")
    )
    assert order.prepay_error == expected
    assert not LedgerEntry.objects.exists()


def test_a_refused_order_is_shown_as_refused_in_the_history_and_on_its_page(payer_client, payer):
    Fault.objects.create(out_trade_no="", systemerror_endpoints="unifiedorder")
    prepay(payer_client, "10.00")
    order = RechargeOrder.objects.get()
    history = re.sub(r"\s+", " ", payer_client.get("/orders/").content.decode())
    assert "下单失败，未扣款" in history and "待支付" not in history
    html = page(payer_client, order)
    assert 'data-testid="order-result"> 下单失败，未扣款 </h2>' in html
    assert "超过支付时间" not in html and "继续支付" not in html and "重新充值" in html
    # Past its time it still says what happened, not that it expired.
    with mock.patch("django.utils.timezone.now", return_value=order.expires_at + timezone.timedelta(hours=1)):
        assert "超过支付时间" not in page(payer_client, order)
    assert status(payer_client, order)["status"] == "closed"


def test_a_refused_order_does_not_count_toward_the_open_order_limit(payer_client, settings):
    settings.RECHARGE_MAX_OPEN_ORDERS = 1
    Fault.objects.create(out_trade_no="", systemerror_endpoints="unifiedorder")
    assert prepay(payer_client, "10.00").status_code == 502
    Fault.objects.all().delete()
    answer = prepay(payer_client, "20.00")
    assert answer.status_code == 200, answer.json()
    assert RechargeOrder.objects.filter(status=RechargeOrder.Status.PENDING).count() == 1


def test_systemerror_is_asked_again_once_with_the_same_order_before_it_is_refused(payer_client):
    cls = provider_class_in_use()
    refused = WeChatError("jsapi: SYSTEMERROR", wechat_code("SYSTEMERROR", "SYSTEM_ERROR"))
    with mock.patch.object(cls, "prepay", autospec=True, side_effect=[refused, cls.prepay]) as placed:
        response = prepay(payer_client, "10.00")
    assert response.status_code == 200
    assert [call.kwargs["out_trade_no"] for call in placed.call_args_list] == [response.json()["out_trade_no"]] * 2
    order = RechargeOrder.objects.get()
    assert order.status == RechargeOrder.Status.PENDING and order.prepay_id and not order.close_reason


def test_a_call_that_failed_on_the_way_keeps_the_order_and_the_retry_places_the_same_one(payer_client):
    cls = provider_class_in_use()
    lost = WeChatError("jsapi: ReadTimeout", "NETWORK", retryable=True)
    with mock.patch.object(cls, "prepay", autospec=True, side_effect=lost):
        response = prepay(payer_client, "10.00")
    assert response.status_code == 502 and response.json()["error"] == "wechat_unavailable"
    order = RechargeOrder.objects.get()
    assert order.status == RechargeOrder.Status.PENDING and not order.close_reason
    again = prepay(payer_client, "10.00").json()
    assert again["out_trade_no"] == order.out_trade_no and Trade.objects.get().out_trade_no == order.out_trade_no


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        ("SYSTEMERROR", True),
        ("SYSTEM_ERROR", True),
        ("PARAM_ERROR", True),
        ("SIGNERROR", True),
        ("ANSWER_SIGNATURE", True),
        ("FAIL", True),
        ("ORDERCLOSED", True),
        ("NETWORK", False),
        ("BAD_ANSWER", False),
        ("HTTP_502", False),
        ("HTTP_504", False),
    ],
)
def test_an_answer_from_wechat_is_told_from_a_failure_on_the_way(code, refusal):
    assert WeChatError("x", code).answered is refusal


def test_a_concurrent_request_that_placed_the_order_keeps_it_from_being_refused(payer):
    order = make_order(payer, prepay_id="wx-placed-meanwhile")
    assert order.refuse("SYSTEMERROR") is False
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and not order.close_reason


# -- paid at WeChat, not credited: being confirmed ---------------------------------------------------------------


def paid_with_another_amount(client) -> RechargeOrder:
    number = prepay(client, "10.00").json()["out_trade_no"]
    Fault.objects.create(out_trade_no=number, report_total_fee=1)
    trade = Trade.objects.get(out_trade_no=number)
    sandbox_services.pay(trade.prepay_id, trade.appid)
    return RechargeOrder.objects.get(out_trade_no=number)


def assert_being_confirmed(client, order: RechargeOrder) -> None:
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and order.is_confirming and order.status_text == "支付确认中"
    html = page(client, order)
    assert "支付已收到，正在确认" in html and order.out_trade_no in html
    assert "未扣款" not in html and "继续支付" not in html and 'data-pay-url="/payments' not in html and "重新充值" not in html
    assert "请勿重复支付" in html and 'data-confirming="1"' in html
    answer = status(client, order)
    assert answer["status"] == "pending" and answer["confirming"] is True
    refused = client.post(f"/payments/orders/{order.out_trade_no}/pay/")
    assert refused.status_code == 409 and refused.json()["error"] == "order_confirming"
    assert "正在确认" in refused.json()["message"]
    history = re.sub(r"\s+", " ", client.get("/orders/").content.decode())
    assert "支付确认中" in history and "待支付" not in history


def test_a_notify_with_another_amount_leaves_the_order_being_confirmed(payer_client, payer):
    order = paid_with_another_amount(payer_client)
    assert delivery.deliver_due() == 1  # the notify, reporting 0.01 for a 10.00 order
    assert Incident.objects.get().kind == Incident.Kind.AMOUNT_MISMATCH
    assert_being_confirmed(payer_client, order)
    payer.refresh_from_db()
    assert payer.balance == 0


def test_a_query_with_another_amount_leaves_the_order_being_confirmed(payer_client, payer):
    order = paid_with_another_amount(payer_client)
    answer = status(payer_client, order, paid="1")  # the notify is not delivered: the poll asks WeChat
    assert answer["confirming"] is True and answer["status"] == "pending"
    assert_being_confirmed(payer_client, order)


def test_a_query_that_says_paid_without_a_transaction_is_remembered(payer_client, payer):
    order = make_order(payer, prepay_id="wx-1", prepay_expires_at=timezone.now() + timezone.timedelta(minutes=20))
    cls = provider_class_in_use()
    from payments.providers.base import TradeInfo

    odd = TradeInfo(out_trade_no=order.out_trade_no, state="SUCCESS", total=None)
    with mock.patch.object(cls, "query", autospec=True, return_value=odd):
        services.sync_order(order)
    order.refresh_from_db()
    assert order.is_confirming and order.status == RechargeOrder.Status.PENDING


def test_prepay_answered_orderpaid_is_remembered_and_never_paid_again(payer_client, payer):
    number = prepay(payer_client, "10.00").json()["out_trade_no"]
    trade = Trade.objects.get(out_trade_no=number)
    sandbox_services.pay(trade.prepay_id, trade.appid)  # paid at WeChat; the notify is lost
    # Our side lost the prepay_id (the answer never came back) and cannot ask WeChat now.
    RechargeOrder.objects.filter(out_trade_no=number).update(prepay_id="", prepay_expires_at=None)
    Fault.objects.create(out_trade_no=number, systemerror_endpoints="orderquery")

    response = prepay(payer_client, "10.00")  # unified order again: WeChat answers ORDERPAID
    assert response.status_code == 409 and response.json()["error"] == "order_confirming"
    assert response.json()["out_trade_no"] == number and response.json()["order_url"] == f"/orders/{number}/"
    order = RechargeOrder.objects.get(out_trade_no=number)
    assert order.is_confirming and RechargeOrder.objects.count() == 1
    assert_being_confirmed(payer_client, order)

    Fault.objects.all().delete()  # the query works again: credited, and the page says so
    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timezone.timedelta(seconds=10)):
        answer = status(payer_client, order)
    assert answer["status"] == "paid" and answer["confirming"] is False and answer["balance_fen"] == 1000


def test_an_order_being_confirmed_is_not_reused_nor_counted_as_open(payer_client, settings):
    settings.RECHARGE_MAX_OPEN_ORDERS = 1
    order = paid_with_another_amount(payer_client)
    status(payer_client, order, paid="1")
    answer = prepay(payer_client, "10.00")
    assert answer.status_code == 200 and answer.json()["out_trade_no"] != order.out_trade_no


def test_a_payment_reported_paid_and_credited_later_is_simply_paid(payer_client, payer):
    order = make_order(payer, paid_reported_at=timezone.now())
    assert order.is_confirming
    services.apply_payment(order.out_trade_no, "4200000000202612070000000001", order.amount, timezone.now())
    order.refresh_from_db()
    assert not order.is_confirming and order.status_text == "已支付"
    assert "支付成功" in page(payer_client, order)

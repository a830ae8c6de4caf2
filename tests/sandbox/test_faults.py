"""Each fault switch, per trade and global, as a merchant would meet it."""

from __future__ import annotations

import time

import pytest
import requests
from django.conf import settings
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException

from sandbox import delivery as sandbox_delivery
from sandbox.models import Attempt, Delivery, Fault, Refund, Trade
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params
from wxrecharge import wxpay as protocol

pytestmark = pytest.mark.django_db(transaction=True)


def paid_order(wxpay, sandbox_url, out_trade_no, notify_url):
    prepay_id = create_order(wxpay, out_trade_no, notify_url=notify_url)["prepay_id"]
    return cashier_pay(sandbox_url, pay_params(prepay_id))


def test_drop_the_next_n_notifies(wxpay, sandbox_url, receiver, settings):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0
    merchant = receiver()
    Fault.objects.create(out_trade_no="F1", drop_notifies=2)
    paid_order(wxpay, sandbox_url, "F1", merchant.url)
    for _ in range(3):
        sandbox_delivery.deliver_due()
    assert list(Attempt.objects.values_list("outcome", flat=True)) == ["dropped", "dropped", "success"]
    assert len(merchant.received) == 1
    assert Fault.objects.get(out_trade_no="F1").drop_notifies == 0


def test_a_global_drop_applies_to_every_trade_without_its_own_switches(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="", drop_notifies=1)
    paid_order(wxpay, sandbox_url, "F2", merchant.url)
    sandbox_delivery.deliver_due()
    assert merchant.received == [] and Attempt.objects.get().outcome == "dropped"


def test_send_each_notify_twice(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="F3", duplicate_notifies=True)
    paid_order(wxpay, sandbox_url, "F3", merchant.url)
    sandbox_delivery.deliver_due()
    assert len(merchant.received) == 2 and merchant.received[0][1] == merchant.received[1][1]


def test_delay_notifies(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="F4", notify_delay_seconds=60)
    paid_order(wxpay, sandbox_url, "F4", merchant.url)
    assert sandbox_delivery.deliver_due() == 0 and merchant.received == []
    assert Delivery.objects.get().next_attempt_at.timestamp() > time.time() + 55


def test_corrupt_the_signature_of_notifies_and_queries(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="F5", corrupt_signature=True)
    paid_order(wxpay, sandbox_url, "F5", merchant.url)
    sandbox_delivery.deliver_due()
    with pytest.raises(InvalidSignatureException):
        wxpay.parse_payment_result(merchant.received[0][1])


def test_report_a_different_total_fee_in_notifies_and_queries(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="F6", report_total_fee=1)
    paid_order(wxpay, sandbox_url, "F6", merchant.url)
    sandbox_delivery.deliver_due()
    assert wxpay.parse_payment_result(merchant.received[0][1])["total_fee"] == 1  # still validly signed
    assert wxpay.order.query(out_trade_no="F6")["total_fee"] == "1"
    assert Trade.objects.get(out_trade_no="F6").total_fee == 1000


@pytest.mark.parametrize("endpoint", ["unifiedorder", "orderquery"])
def test_systemerror_on_a_chosen_endpoint(wxpay, endpoint):
    Fault.objects.create(out_trade_no="", systemerror_endpoints=f"{endpoint}, downloadbill")
    with pytest.raises(WeChatPayException) as exc:
        if endpoint == "unifiedorder":
            create_order(wxpay, "F7")
        else:
            wxpay.order.query(out_trade_no="F7")
    assert exc.value.errcode == "SYSTEMERROR"
    assert not Trade.objects.exists()


def test_end_a_trade_in_payerror(wxpay, sandbox_url):
    Fault.objects.create(out_trade_no="F8", end_state="PAYERROR")
    answer = paid_order(wxpay, sandbox_url, "F8", "http://127.0.0.1:9/n")
    assert answer["err_msg"] == "get_brand_wcpay_request:fail"
    assert wxpay.order.query(out_trade_no="F8")["trade_state"] == "PAYERROR"
    assert not Delivery.objects.exists()


def test_end_a_trade_in_userpaying(wxpay, sandbox_url):
    Fault.objects.create(out_trade_no="F9", end_state="USERPAYING")
    answer = paid_order(wxpay, sandbox_url, "F9", "http://127.0.0.1:9/n")
    assert answer["err_msg"] == "get_brand_wcpay_request:ok"  # the page's ok is no proof of payment
    assert wxpay.order.query(out_trade_no="F9")["trade_state"] == "USERPAYING"
    assert not Delivery.objects.exists()


def test_end_a_refund_in_refundclose_gives_the_amount_back(wxpay, sandbox_url):
    paid_order(wxpay, sandbox_url, "F10", "http://127.0.0.1:9/n")
    Fault.objects.create(out_trade_no="F10", end_state="REFUNDCLOSE")
    wxpay.refund.apply(total_fee=1000, refund_fee=1000, out_refund_no="RF10", out_trade_no="F10")
    assert wxpay.refund.query(out_refund_no="RF10")["refund_status_0"] == "REFUNDCLOSE"
    assert Refund.objects.get().state == Refund.REFUNDCLOSE
    assert Trade.objects.get(out_trade_no="F10").refunded_fee == 0


def test_a_trades_own_switches_win_over_the_global_ones(wxpay, sandbox_url, receiver):
    merchant = receiver()
    Fault.objects.create(out_trade_no="", drop_notifies=5)
    Fault.objects.create(out_trade_no="F11")
    paid_order(wxpay, sandbox_url, "F11", merchant.url)
    sandbox_delivery.deliver_due()
    assert len(merchant.received) == 1


def test_the_dashboard_shows_trades_attempts_and_sets_switches(wxpay, sandbox_url, receiver, client, admin_client):
    merchant = receiver()
    paid_order(wxpay, sandbox_url, "F12", merchant.url)
    sandbox_delivery.deliver_due()
    page = client.get("/sandbox/").content.decode()
    assert "F12" in page and "SUCCESS" in page and "已送达" in page and "success" in page
    response = client.post("/sandbox/", {"out_trade_no": "F13", "drop_notifies": "3", "notify_delay_seconds": "0",
                                         "systemerror_endpoints": "", "end_state": "USERPAYING"})
    assert response.status_code == 302
    fault = Fault.objects.get(out_trade_no="F13")
    assert fault.drop_notifies == 3 and fault.end_state == "USERPAYING"
    client.post("/sandbox/", {"out_trade_no": "F13", "drop_notifies": "1", "notify_delay_seconds": "0"})
    assert Fault.objects.get(out_trade_no="F13").drop_notifies == 1
    client.post(f"/sandbox/faults/{fault.pk}/delete/")
    assert not Fault.objects.filter(out_trade_no="F13").exists()
    for model in ("trade", "delivery", "refund", "authcode", "fault"):
        assert admin_client.get(f"/admin/sandbox/{model}/").status_code == 200
    delivery = Delivery.objects.get()
    assert admin_client.get(f"/admin/sandbox/delivery/{delivery.pk}/change/").status_code == 200


def test_sandbox_answers_are_signed_even_for_faults(wxpay, sandbox_url):
    Fault.objects.create(out_trade_no="", systemerror_endpoints="orderquery")
    fields = {"appid": settings.WECHAT_APPID, "mch_id": settings.WECHAT_MCH_ID, "nonce_str": "n", "out_trade_no": "X"}
    fields["sign"] = protocol.sign(fields, settings.WECHAT_API_KEY)
    answer = protocol.parse_xml(requests.post(sandbox_url + "pay/orderquery", data=protocol.to_xml(fields), timeout=10).content)
    assert answer["err_code"] == "SYSTEMERROR" and protocol.verify(answer, settings.WECHAT_API_KEY)

"""Each fault switch, per trade and global, as a merchant would meet it."""

from __future__ import annotations

import time

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from wechatpy.exceptions import InvalidSignatureException, WeChatPayException

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox.models import Attempt, Delivery, Fault, Refund, Trade
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params
from wxproto import v2 as protocol

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
    queried = wxpay.order.query(out_trade_no="F5")
    assert queried["trade_state"] == "SUCCESS" and queried["sign"]
    assert not protocol.verify(queried, settings.WECHAT_API_KEY)
    by_transaction_id = wxpay.order.query(transaction_id=queried["transaction_id"])
    assert not protocol.verify(by_transaction_id, settings.WECHAT_API_KEY)


def test_corrupt_signature_also_spoils_closeorder_refund_and_refundquery_answers(wxpay, sandbox_url):
    Fault.objects.create(out_trade_no="F14", corrupt_signature=True)
    created = create_order(wxpay, "F14")
    assert not protocol.verify(created, settings.WECHAT_API_KEY)  # the switch is on for this trade from the start
    assert not protocol.verify(wxpay.order.close("F14"), settings.WECHAT_API_KEY)
    paid_order(wxpay, sandbox_url, "F15", "http://127.0.0.1:9/n")
    Fault.objects.create(out_trade_no="F15", corrupt_signature=True)
    applied = wxpay.refund.apply(total_fee=1000, refund_fee=100, out_refund_no="RF15", out_trade_no="F15")
    assert applied["refund_id"] and not protocol.verify(applied, settings.WECHAT_API_KEY)
    for query in ({"out_trade_no": "F15"}, {"out_refund_no": "RF15"}, {"refund_id": applied["refund_id"]}):
        answer = wxpay.refund.query(**query)
        assert answer["out_refund_no_0"] == "RF15" and not protocol.verify(answer, settings.WECHAT_API_KEY), query
    with pytest.raises(WeChatPayException) as exc:
        wxpay.order.close("F15")
    assert exc.value.errcode == "ORDERPAID"
    assert not protocol.verify(protocol.parse_xml(exc.value.response.content), settings.WECHAT_API_KEY)  # errors too


def test_corrupt_signature_leaves_other_trades_answers_signed(wxpay, sandbox_url):
    Fault.objects.create(out_trade_no="F16", corrupt_signature=True)
    created = create_order(wxpay, "F17")
    assert protocol.verify(created, settings.WECHAT_API_KEY)
    assert protocol.verify(wxpay.order.query(out_trade_no="F17"), settings.WECHAT_API_KEY)


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


def test_end_a_refund_in_refundclose_gives_the_amount_back(wxpay, sandbox_url, receiver, slow_refunds):
    merchant = receiver()
    paid_order(wxpay, sandbox_url, "F10", "http://127.0.0.1:9/n")
    Fault.objects.create(out_trade_no="F10", end_state="REFUNDCLOSE")
    wxpay.refund.apply(total_fee=1000, refund_fee=1000, out_refund_no="RF10", out_trade_no="F10", notify_url=merchant.url)
    assert wxpay.refund.query(out_refund_no="RF10")["refund_status_0"] == "PROCESSING"
    assert wxpay.order.query(out_trade_no="F10")["trade_state"] == "REFUND"
    Refund.objects.update(settle_at=timezone.now())
    assert wxpay.refund.query(out_refund_no="RF10")["refund_status_0"] == "REFUNDCLOSE"
    assert Refund.objects.get().state == Refund.REFUNDCLOSE
    assert Trade.objects.get(out_trade_no="F10").refunded_fee == 0
    assert wxpay.order.query(out_trade_no="F10")["trade_state"] == "SUCCESS"  # nothing else is refunded
    sandbox_delivery.deliver_due()
    info = protocol.decrypt_req_info(protocol.parse_xml(merchant.received[0][1])["req_info"], settings.WECHAT_API_KEY)
    assert info["refund_status"] == "REFUNDCLOSE" and "success_time" not in info
    # The amount given back can be refunded again.
    wxpay.refund.apply(total_fee=1000, refund_fee=1000, out_refund_no="RF10b", out_trade_no="F10")


def test_a_refundclose_leaves_the_trade_in_refund_while_another_refund_stands(wxpay, sandbox_url, slow_refunds):
    paid_order(wxpay, sandbox_url, "F18", "http://127.0.0.1:9/n")
    wxpay.refund.apply(total_fee=1000, refund_fee=300, out_refund_no="RF18a", out_trade_no="F18")
    Fault.objects.create(out_trade_no="F18", end_state="REFUNDCLOSE")
    wxpay.refund.apply(total_fee=1000, refund_fee=200, out_refund_no="RF18b", out_trade_no="F18")
    Refund.objects.filter(out_refund_no="RF18b").update(settle_at=timezone.now())
    queried = wxpay.refund.query(out_trade_no="F18")
    assert (queried["refund_status_0"], queried["refund_status_1"]) == ("PROCESSING", "REFUNDCLOSE")
    assert Trade.objects.get(out_trade_no="F18").refunded_fee == 300
    assert wxpay.order.query(out_trade_no="F18")["trade_state"] == "REFUND"


def test_end_a_refund_in_change_keeps_the_amount_spent(wxpay, sandbox_url, receiver):
    merchant = receiver()
    paid_order(wxpay, sandbox_url, "F19", "http://127.0.0.1:9/n")
    Fault.objects.create(out_trade_no="F19", end_state="CHANGE")
    wxpay.refund.apply(total_fee=1000, refund_fee=1000, out_refund_no="RF19", out_trade_no="F19", notify_url=merchant.url)
    Refund.objects.update(settle_at=timezone.now())
    sandbox_delivery.deliver_due()  # the worker settles it, then delivers its notify
    info = protocol.decrypt_req_info(protocol.parse_xml(merchant.received[0][1])["req_info"], settings.WECHAT_API_KEY)
    assert info["refund_status"] == "CHANGE" and info["out_refund_no"] == "RF19"
    assert wxpay.refund.query(out_refund_no="RF19")["refund_status_0"] == "CHANGE"
    # The money left WeChat; the merchant finishes this refund by hand, not with a second one.
    assert Trade.objects.get(out_trade_no="F19").refunded_fee == 1000
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=1, out_refund_no="RF19b", out_trade_no="F19")
    assert exc.value.errcode == "ERROR"


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
    assert "F12" in page and "<code>SUCCESS</code> 支付成功" in page and "已送达" in page and "商户答 SUCCESS" in page
    response = client.post(
        "/sandbox/",
        {
            "out_trade_no": "F13",
            "drop_notifies": "3",
            "notify_delay_seconds": "0",
            "systemerror_endpoints": "",
            "end_state": "USERPAYING",
        },
    )
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

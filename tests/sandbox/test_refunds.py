"""Refunds settle asynchronously, as WeChat's do: 申请退款 answers at once with a PROCESSING
refund; the delivery worker (or a refundquery that finds it due) settles it once and
queues its notify."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone
from wechatpy.exceptions import WeChatPayException

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.models import Delivery, Refund, Trade
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params, wait_for
from tests.sandbox.test_merchant_api import raw
from wxproto import v2 as protocol

pytestmark = pytest.mark.django_db(transaction=True)


def paid(wxpay, sandbox_url, out_trade_no, total_fee=1000):
    prepay_id = create_order(wxpay, out_trade_no, total_fee=total_fee)["prepay_id"]
    assert cashier_pay(sandbox_url, pay_params(prepay_id))["err_msg"] == "get_brand_wcpay_request:ok"


def refund_info(body: bytes) -> dict[str, str]:
    """The decrypted req_info of a refund notify, as the merchant reads it."""
    outer = protocol.parse_xml(body)
    assert outer["return_code"] == "SUCCESS" and "sign" not in outer
    return protocol.decrypt_req_info(outer["req_info"], settings.WECHAT_API_KEY)


def make_due(**filters):
    Refund.objects.filter(**filters).update(settle_at=timezone.now())


def test_refundquery_says_processing_right_after_the_refund_and_success_after_the_delay(wxpay, sandbox_url, settings):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0.25  # settles 2s * 0.25 = 0.5s after it is accepted
    paid(wxpay, sandbox_url, "RQ1")
    started = time.monotonic()
    applied = wxpay.refund.apply(total_fee=1000, refund_fee=300, out_refund_no="RQ1-1", out_trade_no="RQ1")
    assert applied["result_code"] == "SUCCESS" and applied["refund_id"] and applied["refund_fee"] == "300"
    assert protocol.verify(applied, settings.WECHAT_API_KEY)
    queried = wxpay.refund.query(out_refund_no="RQ1-1")
    assert queried["refund_status_0"] == "PROCESSING" and "refund_success_time_0" not in queried
    assert wxpay.order.query(out_trade_no="RQ1")["trade_state"] == "REFUND"  # 转入退款
    assert not Delivery.objects.filter(kind=Delivery.REFUND).exists()

    def settled():
        return wxpay.refund.query(out_refund_no="RQ1-1")["refund_status_0"] == "SUCCESS"

    assert wait_for(settled, timeout=5)  # no worker runs: refundquery settles it when due
    assert time.monotonic() - started >= 0.45
    queried = wxpay.refund.query(refund_id=applied["refund_id"])
    assert queried["refund_success_time_0"] and protocol.verify(queried, settings.WECHAT_API_KEY)
    assert Trade.objects.get(out_trade_no="RQ1").refunded_fee == 300


def test_a_refund_notify_arrives_with_refund_status_success_once_the_worker_settles_it(
    wxpay, sandbox_url, receiver, delivery_worker
):
    merchant = receiver()
    paid(wxpay, sandbox_url, "RQ2", total_fee=500)
    delivery_worker()
    applied = wxpay.refund.apply(
        total_fee=500, refund_fee=200, out_refund_no="RQ2-1", out_trade_no="RQ2", notify_url=merchant.url
    )
    assert wait_for(lambda: merchant.received)
    info = refund_info(merchant.received[0][1])
    assert info["refund_status"] == "SUCCESS" and info["success_time"]
    assert (info["out_trade_no"], info["out_refund_no"], info["refund_id"]) == ("RQ2", "RQ2-1", applied["refund_id"])
    assert (info["total_fee"], info["refund_fee"], info["settlement_refund_fee"]) == ("500", "200", "200")
    assert info["transaction_id"] == Trade.objects.get(out_trade_no="RQ2").transaction_id
    # The notify and the query tell the same story.
    assert wxpay.refund.query(out_refund_no="RQ2-1")["refund_status_0"] == "SUCCESS"
    assert wait_for(lambda: Delivery.objects.get(kind=Delivery.REFUND).state == Delivery.DELIVERED)


def test_a_refund_without_a_notify_url_settles_without_a_notify(wxpay, sandbox_url):
    paid(wxpay, sandbox_url, "RQ3")
    wxpay.refund.apply(total_fee=1000, refund_fee=1000, out_refund_no="RQ3-1", out_trade_no="RQ3")
    make_due()
    sandbox_delivery.deliver_due()
    assert Refund.objects.get().state == Refund.SUCCESS
    assert not Delivery.objects.filter(kind=Delivery.REFUND).exists()


def test_the_sandbox_deliver_command_settles_due_refunds_and_sends_their_notify(
    wxpay, sandbox_url, receiver, capsys, slow_refunds
):
    merchant = receiver()
    paid(wxpay, sandbox_url, "RQ4")
    wxpay.refund.apply(total_fee=1000, refund_fee=10, out_refund_no="RQ4-1", out_trade_no="RQ4", notify_url=merchant.url)
    call_command("sandbox_deliver")
    assert "settled 0 refunds" in capsys.readouterr().out  # not due yet
    make_due()
    call_command("sandbox_deliver")
    assert "settled 1 refunds, attempted 1 notifies" in capsys.readouterr().out
    assert refund_info(merchant.received[0][1])["refund_status"] == "SUCCESS"


def test_a_refund_is_settled_once_when_refundquery_and_the_worker_race(wxpay, sandbox_url, receiver, delivery_worker):
    merchant = receiver()
    paid(wxpay, sandbox_url, "RQ5")
    wxpay.refund.apply(total_fee=1000, refund_fee=700, out_refund_no="RQ5-1", out_trade_no="RQ5", notify_url=merchant.url)
    make_due()
    barrier = threading.Barrier(7)
    statuses: list[str] = []
    settled_here: list[int] = []
    errors: list[Exception] = []

    def query():
        barrier.wait()
        try:
            for _ in range(5):
                statuses.append(wxpay.refund.query(out_refund_no="RQ5-1")["refund_status_0"])
        except Exception as exc:  # reported below
            errors.append(exc)

    def settle():  # what each round of the worker does first
        barrier.wait()
        try:
            settled_here.append(services.settle_due_refunds())
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=query) for _ in range(4)] + [threading.Thread(target=settle) for _ in range(2)]
    for t in threads:
        t.start()
    delivery_worker()  # and the worker itself
    barrier.wait()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert statuses == ["SUCCESS"] * 20  # due before anyone asked: every answer is the settled one
    assert wait_for(lambda: Delivery.objects.filter(kind=Delivery.REFUND, state=Delivery.DELIVERED).exists())
    time.sleep(0.3)  # a second notify, if any, would have arrived by now
    assert len(merchant.received) == 1 and refund_info(merchant.received[0][1])["refund_status"] == "SUCCESS"
    assert Delivery.objects.filter(kind=Delivery.REFUND).count() == 1
    assert sum(settled_here) <= 1
    assert Trade.objects.get(out_trade_no="RQ5").refunded_fee == 700


def test_settling_a_settled_refund_does_nothing(wxpay, sandbox_url):
    paid(wxpay, sandbox_url, "RQ6")
    wxpay.refund.apply(
        total_fee=1000, refund_fee=100, out_refund_no="RQ6-1", out_trade_no="RQ6", notify_url="http://127.0.0.1:9/n"
    )
    refund = Refund.objects.get()
    assert services.settle_refund(refund.pk).state == Refund.SUCCESS
    assert services.settle_refund(refund.pk) is None
    assert services.settle_due_refunds() == 0
    assert Delivery.objects.filter(kind=Delivery.REFUND).count() == 1


def test_the_same_out_refund_no_answers_the_same_refund_while_and_after_it_processes(wxpay, sandbox_url):
    paid(wxpay, sandbox_url, "RQ7")
    first = wxpay.refund.apply(total_fee=1000, refund_fee=400, out_refund_no="RQ7-1", out_trade_no="RQ7")
    again = wxpay.refund.apply(total_fee=1000, refund_fee=400, out_refund_no="RQ7-1", out_trade_no="RQ7")
    make_due()
    sandbox_delivery.deliver_due()
    later = wxpay.refund.apply(total_fee=1000, refund_fee=400, out_refund_no="RQ7-1", out_trade_no="RQ7")
    assert first["refund_id"] == again["refund_id"] == later["refund_id"]
    assert Refund.objects.count() == 1 and Trade.objects.get(out_trade_no="RQ7").refunded_fee == 400
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=500, out_refund_no="RQ7-1", out_trade_no="RQ7")
    assert exc.value.errcode == "INVALID_REQUEST"


def test_refunds_still_processing_count_against_what_is_left(wxpay, sandbox_url, slow_refunds):
    paid(wxpay, sandbox_url, "RQ8")
    wxpay.refund.apply(total_fee=1000, refund_fee=800, out_refund_no="RQ8-1", out_trade_no="RQ8")
    assert Refund.objects.get().state == Refund.PROCESSING
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=201, out_refund_no="RQ8-2", out_trade_no="RQ8")
    assert exc.value.errcode == "ERROR"


def test_concurrent_refunds_never_exceed_the_total_fee(wxpay, sandbox_url):
    paid(wxpay, sandbox_url, "RQ9")
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def apply(n):
        barrier.wait()
        try:
            wxpay.refund.apply(total_fee=1000, refund_fee=600, out_refund_no=f"RQ9-{n}", out_trade_no="RQ9")
            outcomes.append("SUCCESS")
        except WeChatPayException as exc:
            outcomes.append(exc.errcode)

    threads = [threading.Thread(target=apply, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert outcomes.count("SUCCESS") == 1
    # PostgreSQL waits on the trade's row lock, then refuses: ERROR. SQLite may refuse a
    # loser's write instead: SYSTEMERROR, which tells the merchant to retry. Never money.
    refused = {"ERROR"} if connection.vendor == "postgresql" else {"ERROR", "SYSTEMERROR"}
    assert set(outcomes) - {"SUCCESS"} <= refused and len(outcomes) == 4
    trade = Trade.objects.get(out_trade_no="RQ9")
    assert trade.refunded_fee == 600 == sum(r.refund_fee for r in trade.refunds.all())


@pytest.mark.parametrize("refund_fee", ["0", "-1", "1.5", ""])
def test_a_refund_fee_that_is_not_a_positive_number_of_fen_is_a_param_error(wxpay, sandbox_url, refund_fee):
    paid(wxpay, sandbox_url, "RQ10")
    answer = raw(
        sandbox_url + "secapi/pay/refund",
        {"out_trade_no": "RQ10", "out_refund_no": "RQ10-1", "total_fee": "1000", "refund_fee": refund_fee or None},
    )
    if not refund_fee:
        assert answer == {"return_code": "FAIL", "return_msg": "缺少参数refund_fee"}
    else:
        assert answer["result_code"] == "FAIL" and answer["err_code"] == "PARAM_ERROR" and "refund_fee" in answer["err_code_des"]
    assert not Refund.objects.exists()


@pytest.mark.parametrize("state", [Trade.NOTPAY, Trade.CLOSED, Trade.PAYERROR, Trade.USERPAYING])
def test_a_trade_that_is_not_paid_cannot_be_refunded(wxpay, state):
    create_order(wxpay, "RQ11")
    Trade.objects.filter(out_trade_no="RQ11").update(state=state)
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=1, out_refund_no="RQ11-1", out_trade_no="RQ11")
    assert exc.value.errcode == "TRADE_STATE_ERROR"
    assert not Refund.objects.exists()


def test_the_dashboard_counts_a_processing_refund_on_its_trade(wxpay, sandbox_url, client):
    paid(wxpay, sandbox_url, "RQ12")
    wxpay.refund.apply(total_fee=1000, refund_fee=250, out_refund_no="RQ12-1", out_trade_no="RQ12")
    page = client.get("/sandbox/").content.decode()
    assert "sbx-state_REFUND" in page and "已退 ¥2.50" in page and "<code>PROCESSING</code> 退款处理中" in page

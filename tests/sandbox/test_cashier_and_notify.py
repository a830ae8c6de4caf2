"""The cashier checks paySign as WeChat's client does; notifies go out and are retried."""

from __future__ import annotations

import time

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox.models import Attempt, Delivery, Refund, Trade
from tests.helpers import FAIL_XML, create_order
from wxproto import v2 as protocol

pytestmark = pytest.mark.django_db(transaction=True)


def pay_params(prepay_id: str, sign_type: str = "MD5", key: str | None = None, appid: str | None = None) -> dict:
    params = {
        "appId": appid or settings.WECHAT_APPID,
        "timeStamp": str(int(time.time())),
        "nonceStr": protocol.nonce(),
        "package": f"prepay_id={prepay_id}",
        "signType": sign_type,
    }
    params["paySign"] = protocol.sign(params, key or settings.WECHAT_API_KEY, sign_type)
    return params


def cashier_pay(sandbox_url, params, outcome="pay"):
    return requests.post(sandbox_url + "cashier/pay", json={**params, "outcome": outcome}, timeout=10).json()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_paying_with_wechatpys_jsapi_params_pays_the_trade(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "C1")["prepay_id"]
    params = wxpay.jsapi.get_jsapi_params(prepay_id)
    sheet = requests.get(sandbox_url + "cashier/prepay", params={"package": params["package"]}, timeout=10).json()
    assert sheet["total_fee"] == 1000 and sheet["body"] == "余额充值"
    assert cashier_pay(sandbox_url, params) == {"err_msg": "get_brand_wcpay_request:ok"}
    assert wxpay.order.query(out_trade_no="C1")["trade_state"] == "SUCCESS"
    assert Delivery.objects.filter(trade__out_trade_no="C1", kind=Delivery.PAYMENT).count() == 1


def test_a_wrong_pay_sign_fails_with_wechats_wording(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "C2")["prepay_id"]
    params = pay_params(prepay_id, key="f" * 32)
    assert cashier_pay(sandbox_url, params) == {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "支付验证签名失败"}
    tampered = {**pay_params(prepay_id), "timeStamp": "1"}
    assert cashier_pay(sandbox_url, tampered)["err_desc"] == "支付验证签名失败"
    assert Trade.objects.get(out_trade_no="C2").state == Trade.NOTPAY


def test_an_hmac_sha256_pay_sign_is_checked_with_hmac(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "C3", sign_type="HMAC-SHA256")["prepay_id"]
    md5_signed_but_says_hmac = {**pay_params(prepay_id), "signType": "HMAC-SHA256"}
    assert cashier_pay(sandbox_url, md5_signed_but_says_hmac)["err_desc"] == "支付验证签名失败"
    assert cashier_pay(sandbox_url, pay_params(prepay_id, "HMAC-SHA256"))["err_msg"] == "get_brand_wcpay_request:ok"


def test_the_fail_button_and_a_second_payment_fail_and_charge_nothing_twice(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "C4")["prepay_id"]
    assert cashier_pay(sandbox_url, pay_params(prepay_id), outcome="fail")["err_msg"] == "get_brand_wcpay_request:fail"
    assert Trade.objects.get(out_trade_no="C4").state == Trade.NOTPAY
    assert cashier_pay(sandbox_url, pay_params(prepay_id))["err_msg"] == "get_brand_wcpay_request:ok"
    again = cashier_pay(sandbox_url, pay_params(prepay_id))
    assert again["err_msg"] == "get_brand_wcpay_request:fail" and "已支付" in again["err_desc"]
    assert Delivery.objects.filter(trade__out_trade_no="C4").count() == 1


def test_another_apps_appid_or_an_expired_order_cannot_pay(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "C5")["prepay_id"]
    assert "appId" in cashier_pay(sandbox_url, pay_params(prepay_id, appid=settings.WECHAT_MINIPROGRAM_APPID))["err_desc"]
    from django.utils import timezone

    Trade.objects.filter(out_trade_no="C5").update(time_expire=timezone.now())
    assert cashier_pay(sandbox_url, pay_params(prepay_id))["err_desc"] == "订单已过期"
    Trade.objects.filter(out_trade_no="C5").update(prepay_expires_at=timezone.now())  # 2 hours later
    assert "prepay_id 已失效" in cashier_pay(sandbox_url, pay_params(prepay_id))["err_desc"]
    assert cashier_pay(sandbox_url, pay_params("wx_unknown"))["err_msg"] == "get_brand_wcpay_request:fail"


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b'{"appId": 1}', b"garbage"])
def test_the_cashier_refuses_malformed_calls(sandbox_url, body):
    answer = requests.post(sandbox_url + "cashier/pay", data=body, timeout=10).json()
    assert answer["err_msg"] == "get_brand_wcpay_request:fail"


def test_a_notify_answered_fail_twice_is_sent_three_times_on_the_schedule_then_stops(
    wxpay, sandbox_url, receiver, delivery_worker, settings
):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0.02  # 15s -> 0.3s
    merchant = receiver([FAIL_XML, "<xml><return_code>FAIL</return_code></xml>"])
    prepay_id = create_order(wxpay, "N1", notify_url=merchant.url)["prepay_id"]
    delivery_worker()
    assert cashier_pay(sandbox_url, pay_params(prepay_id))["err_msg"] == "get_brand_wcpay_request:ok"
    assert wait_for(lambda: Delivery.objects.filter(state=Delivery.DELIVERED).exists())
    time.sleep(0.8)  # nothing more comes after SUCCESS
    assert len(merchant.received) == 3
    gaps = [b[0] - a[0] for a, b in zip(merchant.received, merchant.received[1:], strict=False)]
    assert all(0.25 <= gap < 1.5 for gap in gaps), gaps  # 15s and 15s, scaled by 0.02
    outcomes = list(Attempt.objects.order_by("at", "pk").values_list("outcome", flat=True))
    assert outcomes == ["fail", "fail", "success"]
    # What arrived is a real WeChat notify: wechatpy verifies it.
    parsed = wxpay.parse_payment_result(merchant.received[-1][1])
    assert parsed["out_trade_no"] == "N1" and parsed["total_fee"] == 1000 and parsed["result_code"] == "SUCCESS"


def test_the_retry_schedule_is_wechats_and_ends_after_24h4m():
    assert sum(sandbox_delivery.SCHEDULE) == 24 * 3600 + 4 * 60
    assert sandbox_delivery.SCHEDULE[:4] == (15, 15, 30, 180)


def test_a_delivery_that_is_never_answered_gives_up_after_sixteen_attempts(wxpay, sandbox_url, settings, receiver):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0
    merchant = receiver([FAIL_XML] * 20)
    prepay_id = create_order(wxpay, "N2", notify_url=merchant.url)["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))
    for _ in range(20):
        sandbox_delivery.deliver_due()
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.GAVE_UP and delivery.attempts == 16 and len(merchant.received) == 16


def test_pending_deliveries_resume_after_a_restart(wxpay, sandbox_url, receiver, delivery_worker):
    merchant = receiver()
    prepay_id = create_order(wxpay, "N3", notify_url=merchant.url)["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))  # queued while no worker runs: the server is "down"
    assert Delivery.objects.get().state == Delivery.PENDING and merchant.received == []
    delivery_worker()  # the process comes back
    assert wait_for(lambda: Delivery.objects.get().state == Delivery.DELIVERED)
    assert len(merchant.received) == 1


def test_sandbox_deliver_command_delivers_once(wxpay, sandbox_url, receiver, capsys):
    merchant = receiver()
    prepay_id = create_order(wxpay, "N4", notify_url=merchant.url)["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))
    call_command("sandbox_deliver")
    assert "attempted 1 notifies" in capsys.readouterr().out
    assert Delivery.objects.get().state == Delivery.DELIVERED and len(merchant.received) == 1


def test_an_unreachable_endpoint_is_recorded_and_retried(wxpay, sandbox_url):
    prepay_id = create_order(wxpay, "N5", notify_url="http://127.0.0.1:9/notify")["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))
    sandbox_delivery.deliver_due()
    delivery = Delivery.objects.get()
    assert delivery.state == Delivery.PENDING and delivery.attempts == 1
    assert Attempt.objects.get().outcome == "error"


def test_refund_notifies_decrypt_with_wechatpy(wxpay, sandbox_url, receiver, slow_refunds):
    merchant = receiver()
    prepay_id = create_order(wxpay, "N6", total_fee=500)["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))
    wxpay.refund.apply(total_fee=500, refund_fee=200, out_refund_no="RN6", out_trade_no="N6", notify_url=merchant.url)
    sandbox_delivery.deliver_due()
    assert merchant.received == []  # still PROCESSING: nothing to tell yet
    Refund.objects.update(settle_at=timezone.now())
    sandbox_delivery.deliver_due()
    body = merchant.received[-1][1]
    assert b"<sign>" not in body
    result = wxpay.parse_refund_notify_result(body)
    assert result["out_refund_no"] == "RN6" and result["refund_fee"] == 200 and result["refund_status"] == "SUCCESS"
    assert result["out_trade_no"] == "N6" and result["success_time"]

"""payments/wechat.py against a faked WeChat (responses): signing, verifying, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone
from wechatpy.pay import WeChatPay

from payments import wechat
from payments.merchant import Merchant
from wxproto import v2 as wxpay

BASE = "https://wechat.test/"


@pytest.fixture(autouse=True)
def v2(settings):
    """The v2 client is what this file tests, whatever API version the suite runs under."""
    settings.WECHAT_PAY_API = "v2"


@pytest.fixture
def pay(settings):
    settings.WECHAT_PAY_BASE_URL = BASE
    return wechat.Pay(Merchant.current(), settings.WECHAT_APPID)


def answer(settings, sign_type="MD5", key=None, **fields):
    body = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": "n0nce",
        "result_code": "SUCCESS",
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    body["sign"] = wxpay.sign(body, key or settings.WECHAT_API_KEY, sign_type)
    return wxpay.to_xml(body)


def place(pay):
    now = timezone.now()
    return pay.unified_order(
        out_trade_no="O1",
        total_fee=1990,
        openid="oUser",
        body="余额充值",
        notify_url="https://pay.example.com/payments/wechat/notify/",
        client_ip="1.2.3.4",
        time_start=now,
        time_expire=now + timedelta(minutes=30),
    )


@responses.activate
@pytest.mark.parametrize("sign_type", ["MD5", "HMAC-SHA256"])
def test_it_signs_requests_and_checks_answers_with_the_configured_sign_type(settings, sign_type):
    settings.WECHAT_SIGN_TYPE = sign_type
    settings.WECHAT_PAY_BASE_URL = BASE
    responses.post(BASE + "pay/unifiedorder", body=answer(settings, sign_type, prepay_id="wx123", trade_type="JSAPI"))
    result = place(wechat.Pay(Merchant.current(), settings.WECHAT_APPID))
    assert result["prepay_id"] == "wx123"
    sent = wxpay.parse_xml(responses.calls[0].request.body)
    assert sent["sign_type"] == sign_type and sent["total_fee"] == "1990" and sent["trade_type"] == "JSAPI"
    assert wxpay.verify(sent, settings.WECHAT_API_KEY, sign_type)
    assert len(sent["time_expire"]) == 14


@responses.activate
def test_an_answer_with_a_bad_signature_is_refused(pay, settings):
    responses.post(BASE + "pay/unifiedorder", body=answer(settings, key="0" * 32, prepay_id="wx123"))
    with pytest.raises(wechat.WeChatError) as exc:
        place(pay)
    assert exc.value.code == "SIGNERROR"


@responses.activate
def test_an_answer_for_another_merchant_is_refused(pay, settings):
    responses.post(BASE + "pay/orderquery", body=answer(settings, mch_id="999", trade_state="SUCCESS"))
    with pytest.raises(wechat.WeChatError):
        pay.query_order("O1")


@responses.activate
def test_return_code_fail_carries_wechats_message(pay):
    responses.post(BASE + "pay/unifiedorder", body=wxpay.to_xml({"return_code": "FAIL", "return_msg": "签名错误"}))
    with pytest.raises(wechat.WeChatError) as exc:
        place(pay)
    assert exc.value.code == "FAIL" and "签名错误" in str(exc.value) and not exc.value.retryable


@responses.activate
@pytest.mark.parametrize(("err_code", "retryable"), [("SYSTEMERROR", True), ("ORDERPAID", False), ("NOAUTH", False)])
def test_business_errors_carry_err_code_and_whether_to_retry(pay, settings, err_code, retryable):
    responses.post(BASE + "pay/unifiedorder", body=answer(settings, result_code="FAIL", err_code=err_code, err_code_des="x"))
    with pytest.raises(wechat.WeChatError) as exc:
        place(pay)
    assert exc.value.code == err_code and exc.value.retryable is retryable


@responses.activate
@pytest.mark.parametrize("failure", [requests.ConnectionError("down"), requests.Timeout("slow")])
def test_network_failures_are_retryable(pay, failure):
    responses.post(BASE + "pay/orderquery", body=failure)
    with pytest.raises(wechat.WeChatError) as exc:
        pay.query_order("O1")
    assert exc.value.code == "NETWORK" and exc.value.retryable


@responses.activate
def test_an_http_error_is_retryable(pay):
    responses.post(BASE + "pay/orderquery", status=503, body="busy")
    with pytest.raises(wechat.WeChatError) as exc:
        pay.query_order("O1")
    assert exc.value.code == "NETWORK"


@responses.activate
@pytest.mark.parametrize(
    "body",
    [
        '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><return_code>&x;</return_code></xml>',
        "<xml><return_code>SUCCESS</return_code><return_code>FAIL</return_code></xml>",
        "not xml",
    ],
)
def test_unsafe_or_broken_answers_are_refused(pay, body):
    responses.post(BASE + "pay/orderquery", body=body)
    with pytest.raises(wechat.WeChatError):
        pay.query_order("O1")


@responses.activate
def test_the_client_sends_the_configured_timeout(pay, settings):
    settings.WECHAT_HTTP_TIMEOUT = 3.5
    responses.post(BASE + "pay/orderquery", body=answer(settings, trade_state="NOTPAY"))
    wechat.Pay(Merchant.current(), settings.WECHAT_APPID).query_order("O1")
    assert responses.calls[0].request.req_kwargs["timeout"] == 3.5


def test_md5_jsapi_params_match_wechatpys(settings):
    params = wechat.Pay(Merchant.current(), settings.WECHAT_APPID).jsapi_params("wx999")
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"] == "prepay_id=wx999" and params["signType"] == "MD5"

    theirs = WeChatPay(settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID).jsapi.get_jsapi_signature(
        "wx999", params["timeStamp"], params["nonceStr"]
    )
    assert params["paySign"] == theirs


def test_hmac_jsapi_params_are_signed_with_hmac(settings):
    settings.WECHAT_SIGN_TYPE = "HMAC-SHA256"
    params = wechat.Pay(Merchant.current(), settings.WECHAT_APPID).jsapi_params("wx999")
    fields = {k: v for k, v in params.items() if k != "paySign"}
    assert params["signType"] == "HMAC-SHA256"
    assert params["paySign"] == wxpay.sign(fields, settings.WECHAT_API_KEY, "HMAC-SHA256")


def test_base_urls_follow_the_sandbox_unless_set(settings):
    from common import wechat as hosts

    # The sandbox's settings (devtools/settings.py) name {SITE_URL}, replaced at each call.
    assert settings.WECHAT_PAY_BASE_URL == settings.WECHAT_API_BASE_URL == "{SITE_URL}/sandbox/"
    assert settings.WECHAT_OPEN_BASE_URL == "{SITE_URL}/sandbox/connect/"
    settings.SITE_URL = "http://127.0.0.1:8000"
    assert hosts.pay_base_url() == "http://127.0.0.1:8000/sandbox/"
    assert hosts.open_base_url() == "http://127.0.0.1:8000/sandbox/connect/"
    settings.SITE_URL = "http://127.0.0.1:8001"  # a live server's address, set at run time
    assert hosts.pay_base_url() == "http://127.0.0.1:8001/sandbox/"
    assert hosts.api_base_url() == "http://127.0.0.1:8001/sandbox/"
    settings.WECHAT_PAY_BASE_URL = "https://compatible.example/wx"
    assert hosts.pay_base_url() == "https://compatible.example/wx/"
    # Unset (the production settings' default): WeChat's own hosts.
    settings.WECHAT_PAY_BASE_URL = settings.WECHAT_API_BASE_URL = settings.WECHAT_OPEN_BASE_URL = None
    assert hosts.pay_base_url() == "https://api.mch.weixin.qq.com/"
    assert hosts.api_base_url() == "https://api.weixin.qq.com/"
    assert hosts.open_base_url() == "https://open.weixin.qq.com/connect/"


@responses.activate
@pytest.mark.django_db
def test_a_success_query_without_transaction_id_or_fee_is_not_applied(settings):
    from payments import services
    from tests.factories import make_order, make_user

    settings.WECHAT_PAY_BASE_URL = BASE
    order = make_order(make_user("u", openid="oU"), amount=100)
    responses.post(BASE + "pay/orderquery", body=answer(settings, trade_state="SUCCESS", total_fee="100"))
    responses.post(BASE + "pay/orderquery", body=answer(settings, trade_state="SUCCESS", transaction_id="42"))
    for _ in range(2):
        assert services.sync_order(order).status == order.Status.PENDING
    order.user.refresh_from_db()
    assert order.user.balance == 0

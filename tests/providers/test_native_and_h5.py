"""Native and H5 orders through each provider, against a faked WeChat (responses): what is
sent (trade type, product_id, scene_info) and what comes back (code_url, h5_url), per
docs/wechat-pay-v2.md and docs/wechat-pay-v3.md."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from payments.providers import provider
from payments.providers.base import WeChatError
from tests.payments.test_notify_v3 import sign, v3_site, wechat_key  # noqa: F401 (fixtures)
from tests.providers.test_wechat_v2_client import answer
from wxproto import v2 as wxpay

V2_BASE = "https://wechat.test/"
V3_BASE = "https://wechat-v3.test/"


def order_fields(**extra):
    now = timezone.now()
    return {
        "out_trade_no": "20261207100000100000000001",
        "total": 1990,
        "description": "余额充值",
        "notify_url": "https://pay.example.com/notify/",
        "client_ip": "203.0.113.9",
        "time_start": now,
        "time_expire": now + timedelta(minutes=30),
        **extra,
    }


def v3_answer(wechat_key, fields: dict, status: int = 200):  # noqa: F811
    body = json.dumps(fields).encode()
    headers = {name[5:].replace("_", "-").title(): value for name, value in sign(body, wechat_key).items()}
    return {"body": body, "status": status, "headers": headers, "content_type": "application/json"}


@responses.activate
def test_v2_native_sends_product_id_and_no_openid_and_answers_the_code_url(settings):
    settings.WECHAT_PAY_API, settings.WECHAT_PAY_BASE_URL = "v2", V2_BASE
    code_url = "weixin://wxpay/bizpayurl?pr=abc123"
    responses.post(V2_BASE + "pay/unifiedorder", body=answer(settings, prepay_id="wx1", trade_type="NATIVE", code_url=code_url))
    assert provider().prepay_native(**order_fields()) == code_url
    sent = wxpay.parse_xml(responses.calls[0].request.body)
    assert sent["trade_type"] == "NATIVE" and sent["product_id"] == "20261207100000100000000001" and "openid" not in sent


@responses.activate
def test_v2_h5_sends_its_scene_info_and_answers_the_mweb_url(settings):
    settings.WECHAT_PAY_API, settings.WECHAT_PAY_BASE_URL = "v2", V2_BASE
    mweb = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2&package=1"
    responses.post(V2_BASE + "pay/unifiedorder", body=answer(settings, prepay_id="wx2", trade_type="MWEB", mweb_url=mweb))
    url = provider().prepay_h5(**order_fields(site_url="https://pay.example.com", site_name="余额充值"))
    assert url == mweb
    sent = wxpay.parse_xml(responses.calls[0].request.body)
    assert sent["trade_type"] == "MWEB" and "openid" not in sent
    assert json.loads(sent["scene_info"]) == {
        "h5_info": {"type": "Wap", "wap_url": "https://pay.example.com", "wap_name": "余额充值"}
    }


@responses.activate
def test_v2_h5_refused_for_want_of_the_permission_is_an_answered_no_auth(settings):
    settings.WECHAT_PAY_API, settings.WECHAT_PAY_BASE_URL = "v2", V2_BASE
    responses.post(
        V2_BASE + "pay/unifiedorder",
        body=answer(settings, result_code="FAIL", err_code="NOAUTH", err_code_des="商户无此接口权限"),
    )
    with pytest.raises(WeChatError) as refused:
        provider().prepay_h5(**order_fields(site_url="https://pay.example.com", site_name="余额充值"))
    assert refused.value.code == "NOAUTH" and refused.value.answered


@responses.activate
def test_v3_native_and_h5_post_their_own_endpoints(v3_site, wechat_key):  # noqa: F811
    v3_site.WECHAT_PAY_BASE_URL = V3_BASE
    responses.post(V3_BASE + "v3/pay/transactions/native", **v3_answer(wechat_key, {"code_url": "weixin://wxpay/bizpayurl?pr=x"}))
    h5 = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx3&package=2"
    responses.post(V3_BASE + "v3/pay/transactions/h5", **v3_answer(wechat_key, {"h5_url": h5}))
    pay = provider()
    assert pay.prepay_native(**order_fields()) == "weixin://wxpay/bizpayurl?pr=x"
    assert pay.prepay_h5(**order_fields(site_url="https://pay.example.com", site_name="余额充值")) == h5
    native, h5_body = (json.loads(call.request.body) for call in responses.calls)
    assert "payer" not in native and native["amount"] == {"total": 1990, "currency": "CNY"}
    assert h5_body["scene_info"] == {
        "payer_client_ip": "203.0.113.9",
        "h5_info": {"type": "Wap", "app_name": "余额充值", "app_url": "https://pay.example.com"},
    }


@responses.activate
def test_v3_an_answer_without_its_url_is_a_failure_to_retry(v3_site, wechat_key):  # noqa: F811
    v3_site.WECHAT_PAY_BASE_URL = V3_BASE
    responses.post(V3_BASE + "v3/pay/transactions/native", **v3_answer(wechat_key, {}))
    with pytest.raises(WeChatError) as failed:
        provider().prepay_native(**order_fields())
    assert failed.value.retryable

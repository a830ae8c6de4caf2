"""The cashier checks a v3 paySign (signType RSA) as WeChat's client does; v2's sign types
keep today's check."""

from __future__ import annotations

import base64
import time

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

from devtools.wechat_sandbox.models import Delivery, Trade
from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params
from tests.sandbox.test_v3_merchant_api import merchant_private_key, prepay, v3_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def v3pay(sandbox_url):
    return v3_client(sandbox_url)


def rsa_params(prepay_id: str, key=None, appid: str | None = None) -> dict:
    params = {
        "appId": appid or settings.WECHAT_APPID,
        "timeStamp": str(int(time.time())),
        "nonceStr": "n" * 32,
        "package": f"prepay_id={prepay_id}",
        "signType": "RSA",
    }
    message = "".join(params[f] + "\n" for f in ("appId", "timeStamp", "nonceStr", "package")).encode()
    signature = (key or merchant_private_key()).sign(message, padding.PKCS1v15(), hashes.SHA256())
    params["paySign"] = base64.b64encode(signature).decode()
    return params


def test_an_rsa_pay_sign_made_by_wechatpayv3_pays_the_trade(v3pay, sandbox_url):
    prepay_id = prepay(v3pay, "V3C001")[1]["prepay_id"]
    params = {
        "appId": settings.WECHAT_APPID,
        "timeStamp": str(int(time.time())),
        "nonceStr": "abc123",
        "package": f"prepay_id={prepay_id}",
        "signType": "RSA",
    }
    params["paySign"] = v3pay.sign([params["appId"], params["timeStamp"], params["nonceStr"], params["package"]])
    assert cashier_pay(sandbox_url, params) == {"err_msg": "get_brand_wcpay_request:ok"}
    assert Trade.objects.get(out_trade_no="V3C001").state == Trade.SUCCESS
    assert Delivery.objects.get().api_version == "v3"


@pytest.mark.parametrize("wrong", ["other_key", "tampered", "garbage", "signed_type"])
def test_a_wrong_rsa_pay_sign_fails_with_wechats_wording(v3pay, sandbox_url, wrong):
    prepay_id = prepay(v3pay, "V3C002")[1]["prepay_id"]
    if wrong == "other_key":
        params = rsa_params(prepay_id, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    elif wrong == "tampered":
        params = {**rsa_params(prepay_id), "timeStamp": "1"}
    elif wrong == "garbage":
        params = {**rsa_params(prepay_id), "paySign": "not base64 at all!"}
    else:  # v2's MD5 sign under signType RSA
        params = {**pay_params(prepay_id), "signType": "RSA"}
    assert cashier_pay(sandbox_url, params) == {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "支付验证签名失败"}
    assert Trade.objects.get(out_trade_no="V3C002").state == Trade.NOTPAY


def test_the_mini_programs_appid_is_in_the_signed_message(v3pay, sandbox_url):
    prepay_id = prepay(v3pay, "V3C003", appid=settings.WECHAT_MINIPROGRAM_APPID)[1]["prepay_id"]
    signed_for_the_official_account = {**rsa_params(prepay_id), "appId": settings.WECHAT_MINIPROGRAM_APPID}
    assert cashier_pay(sandbox_url, signed_for_the_official_account)["err_desc"] == "支付验证签名失败"
    ok = rsa_params(prepay_id, appid=settings.WECHAT_MINIPROGRAM_APPID)
    assert cashier_pay(sandbox_url, ok)["err_msg"] == "get_brand_wcpay_request:ok"


def test_md5_pay_signs_keep_todays_check(v3pay, sandbox_url):
    prepay_id = prepay(v3pay, "V3C004")[1]["prepay_id"]
    assert cashier_pay(sandbox_url, pay_params(prepay_id, key="f" * 32))["err_desc"] == "支付验证签名失败"
    assert cashier_pay(sandbox_url, pay_params(prepay_id))["err_msg"] == "get_brand_wcpay_request:ok"


def test_the_sheet_shows_a_v3_trade(v3pay, sandbox_url):
    prepay_id = prepay(v3pay, "V3C005", total=1990)[1]["prepay_id"]
    sheet = requests.get(sandbox_url + "cashier/prepay", params={"package": f"prepay_id={prepay_id}"}, timeout=10).json()
    assert sheet["total_fee"] == 1990 and sheet["body"] == "余额充值"

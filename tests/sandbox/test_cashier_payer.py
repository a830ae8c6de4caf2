"""The JSAPI cashier pays only with the WeChat the order was placed for, as WeChat's client does:
anyone else gets 下单账号与支付账号不一致，请核实后再支付 (get_brand_wcpay_request:fail), under
both API versions. The browser's WeChat is the person the sandbox's 网页授权 remembered in its
`sandbox_wx_user` cookie; a browser without it is taken to be the order's own WeChat."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from django.conf import settings

from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.models import Delivery, Trade
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import pay_params
from tests.sandbox.test_v3_merchant_api import v3_client

pytestmark = pytest.mark.django_db(transaction=True)

MISMATCH = {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "下单账号与支付账号不一致，请核实后再支付"}
OK = {"err_msg": "get_brand_wcpay_request:ok"}


class Cashier:
    """Orders placed and page parameters signed with one API version's rules."""

    def __init__(self, api: str, sandbox_url: str, wxpay):
        self.api, self.sandbox_url, self.wxpay = api, sandbox_url, wxpay
        self.v3 = v3_client(sandbox_url)

    def order(self, number: str, openid: str, appid: str | None = None) -> str:
        appid = appid or settings.WECHAT_APPID
        if self.api == "v2":
            return create_order(self.wxpay, number, user_id=openid, appid=appid)["prepay_id"]
        code, text = self.v3.pay(
            description="余额充值", out_trade_no=number, amount={"total": 1000}, payer={"openid": openid}, appid=appid
        )
        assert code == 200, text
        return Trade.objects.get(out_trade_no=number).prepay_id

    def params(self, prepay_id: str, appid: str | None = None) -> dict:
        appid = appid or settings.WECHAT_APPID
        if self.api == "v2":
            return pay_params(prepay_id, appid=appid)
        params = {
            "appId": appid,
            "timeStamp": str(int(time.time())),
            "nonceStr": uuid.uuid4().hex,
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        params["paySign"] = self.v3.sign([params["appId"], params["timeStamp"], params["nonceStr"], params["package"]])
        return params

    def pay(self, params: dict, person: str | None = None) -> dict:
        """支付 in the sheet, in a browser whose sandbox WeChat is `person` (None: never met)."""
        cookies = {"sandbox_wx_user": person} if person else {}
        return requests.post(
            self.sandbox_url + "cashier/pay", json={**params, "outcome": "pay"}, cookies=cookies, timeout=10
        ).json()

    def sheet(self, params: dict, person: str | None = None) -> dict:
        cookies = {"sandbox_wx_user": person} if person else {}
        return requests.get(
            self.sandbox_url + "cashier/prepay", params={"package": params["package"]}, cookies=cookies, timeout=10
        ).json()


@pytest.fixture(params=["v2", "v3"])
def cashier(request, sandbox_url, wxpay):
    return Cashier(request.param, sandbox_url, wxpay)


def alice(appid: str | None = None) -> str:
    return services.openid_for(appid or settings.WECHAT_APPID, "alice")


def test_another_wechat_cannot_pay_a_jsapi_order_and_the_orders_own_can(cashier):
    params = cashier.params(cashier.order("PAYER01", alice()))
    assert cashier.sheet(params, "bob")["payer"] == services.openid_for(settings.WECHAT_APPID, "bob")
    assert cashier.pay(params, "bob") == MISMATCH
    trade = Trade.objects.get(out_trade_no="PAYER01")
    assert trade.state == Trade.NOTPAY and trade.openid == alice() and not Delivery.objects.exists()
    assert cashier.sheet(params, "alice")["payer"] == alice()
    assert cashier.pay(params, "alice") == OK
    assert Trade.objects.get(out_trade_no="PAYER01").state == Trade.SUCCESS


def test_a_browser_the_sandbox_never_met_pays_as_the_orders_own_wechat(cashier):
    params = cashier.params(cashier.order("PAYER02", "oPlacedByAnOpenidAlone"))
    assert "payer" not in cashier.sheet(params)
    assert cashier.pay(params) == OK
    assert Trade.objects.get(out_trade_no="PAYER02").openid == "oPlacedByAnOpenidAlone"


def test_the_mini_programs_openids_are_its_own(cashier):
    mini = settings.WECHAT_MINIPROGRAM_APPID
    params = cashier.params(cashier.order("PAYER03", alice(mini), appid=mini), appid=mini)
    assert cashier.pay(params, "bob") == MISMATCH
    assert cashier.pay(params, "alice") == OK


def test_a_native_or_h5_prepay_id_cannot_be_paid_in_the_jsapi_sheet(wxpay, sandbox_url):
    created = wxpay.order.create(
        trade_type="NATIVE",
        body="余额充值",
        total_fee=1000,
        notify_url="http://127.0.0.1:9/n",
        client_ip="1.2.3.4",
        out_trade_no="PAYER04",
        product_id="P1",
    )
    answer = requests.post(
        sandbox_url + "cashier/pay", json={**pay_params(created["prepay_id"]), "outcome": "pay"}, timeout=10
    ).json()
    assert answer == {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "当前商户该支付方式存在异常，暂时无法支付"}
    assert Trade.objects.get(out_trade_no="PAYER04").state == Trade.NOTPAY

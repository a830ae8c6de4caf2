"""Native (scan to pay) and H5 (a phone's browser) at the sandbox, under both API versions:
ordering through v2 `pay/unifiedorder` (wechatpy) and v3 `/v3/pay/transactions/native|h5`
(wechatpayv3, which verifies every 2xx answer's signature, and hand-signed requests), then
paying on the sandbox's phone pages over HTTP (tests/sandbox/phone.py), as WeChat documents
them (docs/wechat-pay-v2.md#native-scan-to-pay, #h5-pay-a-phones-browser, and v3's)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from wechatpayv3 import WeChatPayType
from wechatpy.exceptions import WeChatPayException

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox import phone as sandbox_phone
from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.models import Delivery, Fault, Trade
from tests.helpers import clear_of_midnight, create_order
from tests.sandbox.phone import IPHONE, PAYER, WECHAT, merchant_page, open_h5, pay_h5, scan, scan_and_pay
from tests.sandbox.test_bills import WeChat as BillReader
from tests.sandbox.test_bills import read, today
from tests.sandbox.test_v3_merchant_api import OPENID, assert_wechat_answer, post_json, v3_client
from wxproto import v2 as protocol

pytestmark = pytest.mark.django_db(transaction=True)

WAP = {"h5_info": {"type": "Wap", "wap_url": "https://pay.example.com", "wap_name": "余额充值"}}
V3_SCENE = {
    "payer_client_ip": "203.0.113.9",
    "h5_info": {"type": "Wap", "app_name": "余额充值", "app_url": "https://pay.example.com"},
}


class Refused(Exception):
    """WeChat refused the order: v2 err_code (HTTP 200), or v3 status and code."""

    def __init__(self, code: str, status: int = 200, answer: dict | None = None):
        super().__init__(code, status, answer)
        self.code, self.status, self.answer = code, status, answer or {}


class Merchant:
    """The merchant's side of Native and H5 ordering, with one API version's own client."""

    def __init__(self, api: str, sandbox_url: str, wxpay):
        self.api, self.sandbox_url, self.wxpay = api, sandbox_url, wxpay
        self.v3 = v3_client(sandbox_url)
        # fixed, so that an order sent again has the same parameters (wechatpy's default moves)
        self.time_expire = timezone.now() + timedelta(hours=1)

    def _v2(self, trade_type: str, out_trade_no: str, total: int, notify_url: str, **extra) -> dict:
        try:
            return self.wxpay.order.create(
                trade_type=trade_type,
                body="余额充值",
                total_fee=total,
                notify_url=notify_url,
                client_ip="203.0.113.9",
                out_trade_no=out_trade_no,
                time_start=timezone.now(),
                time_expire=timezone.localtime(self.time_expire, services.BEIJING),
                **extra,
            )
        except WeChatPayException as exc:
            raise Refused(exc.errcode) from exc

    def _v3(self, pay_type, out_trade_no: str, total: int, notify_url: str, **extra) -> dict:
        code, text = self.v3.pay(
            description="余额充值",
            out_trade_no=out_trade_no,
            amount={"total": total, "currency": "CNY"},
            notify_url=notify_url,
            time_expire=services.rfc3339(self.time_expire),
            pay_type=pay_type,
            **extra,
        )
        answer = json.loads(text)
        if code != 200:
            raise Refused(answer["code"], code, answer)
        return answer

    def native(self, out_trade_no: str, total: int = 1000, notify_url: str = "http://127.0.0.1:9/notify") -> str:
        """A Native order; its code_url."""
        if self.api == "v2":
            answer = self._v2("NATIVE", out_trade_no, total, notify_url, product_id="P" + out_trade_no)
            assert answer["trade_type"] == "NATIVE" and answer["prepay_id"].startswith("wx")
            return answer["code_url"]
        answer = self._v3(WeChatPayType.NATIVE, out_trade_no, total, notify_url)
        assert list(answer) == ["code_url"]
        return answer["code_url"]

    def h5(self, out_trade_no: str, total: int = 1000, notify_url: str = "http://127.0.0.1:9/notify") -> str:
        """An H5 order; its h5_url (v2's mweb_url)."""
        if self.api == "v2":
            answer = self._v2("MWEB", out_trade_no, total, notify_url, scene_info=WAP)
            assert answer["trade_type"] == "MWEB" and answer["prepay_id"].startswith("wx")
            return answer["mweb_url"]
        answer = self._v3(WeChatPayType.H5, out_trade_no, total, notify_url, scene_info=V3_SCENE)
        assert list(answer) == ["h5_url"]
        return answer["h5_url"]

    def jsapi(self, out_trade_no: str) -> None:
        if self.api == "v2":
            create_order(self.wxpay, out_trade_no)
        else:
            code, text = self.v3.pay(
                description="余额充值", out_trade_no=out_trade_no, amount={"total": 1000}, payer={"openid": OPENID}
            )
            assert code == 200, text

    def close(self, out_trade_no: str) -> None:
        if self.api == "v2":
            self.wxpay.order.close(out_trade_no)
        else:
            assert self.v3.close(out_trade_no=out_trade_no)[0] == 204

    def query(self, out_trade_no: str) -> dict:
        """trade_state, trade_type and the payer's openid, as the order query tells them."""
        if self.api == "v2":
            answer = self.wxpay.order.query(out_trade_no=out_trade_no)
            return {k: answer.get(k) for k in ("trade_state", "trade_type", "openid")}
        code, text = self.v3.query(out_trade_no=out_trade_no)
        answer = json.loads(text)
        assert code == 200, answer
        return {
            "trade_state": answer["trade_state"],
            "trade_type": answer.get("trade_type"),
            "openid": answer["payer"].get("openid"),
        }

    def notified(self, receiver) -> dict:
        """The payment notify that reached `receiver`, read as this API version's client reads it."""
        headers, body = receiver.headers[-1], receiver.received[-1][1]
        if self.api == "v2":
            return dict(self.wxpay.parse_payment_result(body))
        return json.loads(self.v3.decrypt_callback(headers, body))


@pytest.fixture(params=["v2", "v3"])
def wechat(request, sandbox_url, wxpay):
    return Merchant(request.param, sandbox_url, wxpay)


def page_error(response: requests.Response) -> str | None:
    """WeChat's refusal on a phone page, or None."""
    marker = 'data-testid="phone-error">'
    at = response.text.find(marker)
    return response.text[at + len(marker) :].split("<", 1)[0] if at >= 0 else None


# --- Native ------------------------------------------------------------------------------


def test_a_native_order_answers_a_code_url_whose_page_pays_it_and_sends_the_notify(wechat, receiver):
    merchant = receiver([(204, "")] if wechat.api == "v3" else None)
    code_url = wechat.native("NAT001", total=1990, notify_url=merchant.url)
    assert code_url.startswith(settings.SITE_URL + "/sandbox/native/bizpayurl?pr=")
    page = scan(code_url)
    assert page.status_code == 200 and page_error(page) is None
    assert "¥</small>19.90" in page.text and "沙箱商户" in page.text and "确认支付" in page.text
    assert wechat.query("NAT001")["trade_state"] == "NOTPAY"

    paid = scan_and_pay(code_url, PAYER)
    assert paid.status_code == 200 and 'data-state="SUCCESS"' in paid.text and "支付成功" in paid.text
    assert wechat.query("NAT001") == {"trade_state": "SUCCESS", "trade_type": "NATIVE", "openid": PAYER}
    sandbox_delivery.deliver_due()
    notify = wechat.notified(merchant)
    assert notify["trade_type"] == "NATIVE" and notify["out_trade_no"] == "NAT001"
    assert (notify["openid"] if wechat.api == "v2" else notify["payer"]["openid"]) == PAYER
    assert Delivery.objects.get().state == Delivery.DELIVERED


def test_v2_native_needs_a_product_id_and_no_openid(wxpay):
    with pytest.raises(WeChatPayException) as refused:
        wxpay.order.create(
            trade_type="NATIVE",
            body="余额充值",
            total_fee=1000,
            notify_url="http://127.0.0.1:9/n",
            client_ip="1.2.3.4",
            out_trade_no="NAT002",
        )
    assert refused.value.errcode == "PARAM_ERROR" and "product_id" in refused.value.errmsg
    answer = wxpay.order.create(
        trade_type="NATIVE",
        body="余额充值",
        total_fee=1000,
        notify_url="http://127.0.0.1:9/n",
        client_ip="1.2.3.4",
        out_trade_no="NAT002",
        product_id="P1",
    )
    assert answer["code_url"] and Trade.objects.get(out_trade_no="NAT002").openid == ""


def test_ordering_again_keeps_the_prepay_id_and_gives_a_new_code_url_the_old_one_dying(wechat):
    first = wechat.native("NAT003")
    prepay_id = Trade.objects.get(out_trade_no="NAT003").prepay_id
    second = wechat.native("NAT003")
    assert second != first and Trade.objects.get(out_trade_no="NAT003").prepay_id == prepay_id
    assert page_error(scan(first)) == sandbox_phone.CODE_URL_GONE
    assert scan_and_pay(first).status_code == 200 and Trade.objects.get(out_trade_no="NAT003").state == Trade.NOTPAY
    assert page_error(scan(second)) is None


def test_the_same_out_trade_no_with_other_parameters_or_another_trade_type_is_refused(wechat):
    used = "INVALID_REQUEST" if wechat.api == "v2" else "OUT_TRADE_NO_USED"
    wechat.native("NAT004")
    with pytest.raises(Refused) as refused:
        wechat.native("NAT004", total=2000)
    assert refused.value.code == used and refused.value.status == (200 if wechat.api == "v2" else 403)
    wechat.jsapi("NAT005")
    with pytest.raises(Refused) as refused:
        wechat.native("NAT005")
    assert refused.value.code == used


def test_the_code_of_a_trade_expired_closed_or_paid_shows_why_and_does_not_pay(wechat):
    code_urls = {number: wechat.native(number) for number in ("NAT006", "NAT007", "NAT008", "NAT009")}
    Trade.objects.filter(out_trade_no="NAT006").update(time_expire=timezone.now() - timedelta(seconds=1))
    wechat.close("NAT007")
    assert 'data-state="SUCCESS"' in scan_and_pay(code_urls["NAT008"]).text
    Trade.objects.filter(out_trade_no="NAT009").update(pay_token_expires_at=timezone.now())  # 2 hours on
    expected = {
        "NAT006": "订单已过期",
        "NAT007": "订单已关闭",
        "NAT008": "该订单已支付，请勿重复支付",
        "NAT009": sandbox_phone.CODE_URL_GONE,
    }
    for number, message in expected.items():
        trade, code_url = Trade.objects.get(out_trade_no=number), code_urls[number]
        page = scan(code_url)
        assert page_error(page) == message and 'data-testid="phone-pay"' not in page.text, number
        assert page_error(scan_and_pay(code_url)) == message, number
        assert Trade.objects.get(out_trade_no=number).state == trade.state
    assert Trade.objects.get(out_trade_no="NAT006").transaction_id is None
    assert Delivery.objects.count() == 1  # NAT008's only


def test_a_code_another_wechat_scanned_first_is_refused_to_the_next(wechat):
    Fault.objects.create(out_trade_no="NAT010", end_state="USERPAYING")
    code_url = wechat.native("NAT010")
    assert 'data-state="USERPAYING"' in scan_and_pay(code_url, "oFirstScanner").text
    assert page_error(scan_and_pay(code_url, "oSecondScanner")) == "商家订单信息有误，请重新下单支付"
    Fault.objects.all().delete()
    assert 'data-state="SUCCESS"' in scan_and_pay(code_url, "oFirstScanner").text
    assert wechat.query("NAT010")["openid"] == "oFirstScanner"


def test_the_scan_page_offers_this_browsers_sandbox_wechat_and_known_ones_and_takes_a_typed_openid(wechat):
    code_url = wechat.native("NAT011")
    page = scan(code_url, cookies={"sandbox_wx_user": "alice"}).text
    alice = services.openid_for(settings.WECHAT_APPID, "alice")
    assert alice in page and "本机的沙箱微信" in page and OPENID not in page
    wechat.jsapi("NAT012")  # OPENID ordered once: the sandbox has seen it
    assert OPENID in scan(code_url).text
    paid = scan_and_pay(code_url, alice, typed="oTypedIn", cookies={"sandbox_wx_user": "alice"})
    assert 'data-state="SUCCESS"' in paid.text and wechat.query("NAT011")["openid"] == "oTypedIn"
    no_one = requests.post(settings.SITE_URL + "/sandbox/native/pay", data={"pr": "x"}, timeout=10)
    assert page_error(no_one) == sandbox_phone.CODE_URL_GONE


def test_the_dashboard_links_an_unpaid_native_or_h5_trade_to_its_page(wechat, client):
    code_url = wechat.native("NAT013")
    h5_url = wechat.h5("H5D001")
    page = client.get("/sandbox/").content.decode()
    assert code_url.replace("&", "&amp;") in page and h5_url.replace("&", "&amp;") in page


# --- H5 ------------------------------------------------------------------------------------


def test_an_h5_order_answers_an_h5_url_that_pays_and_returns_to_the_redirect_url(wechat, receiver):
    merchant = receiver([(204, "")] if wechat.api == "v3" else None)
    h5_url = wechat.h5("H5T001", total=500, notify_url=merchant.url)
    assert h5_url.startswith(settings.SITE_URL + "/sandbox/h5/checkmweb?prepay_id=wx")
    assert "&package=" in h5_url
    trade = Trade.objects.get(out_trade_no="H5T001")
    assert trade.trade_type == "MWEB" and trade.scene_info["h5_info"]["type"] == "Wap"
    assert timedelta(minutes=4) < trade.pay_token_expires_at - timezone.now() <= timedelta(minutes=5)
    back = merchant_page("/orders/H5T001/?from=h5&x=1")
    page = open_h5(h5_url, back)
    assert page.status_code == 200 and page_error(page) is None and "¥</small>5.00" in page.text
    assert "余额充值" in page.text  # the site's name from h5_info

    paid = pay_h5(h5_url, back, PAYER)
    assert paid.status_code == 302 and paid.headers["Location"] == back
    assert wechat.query("H5T001") == {"trade_state": "SUCCESS", "trade_type": "MWEB", "openid": PAYER}
    sandbox_delivery.deliver_due()
    assert wechat.notified(merchant)["trade_type"] == "MWEB"


def test_cancelling_on_the_h5_page_goes_back_without_paying(wechat):
    h5_url = wechat.h5("H5T002")
    back = merchant_page("/orders/H5T002/")
    cancelled = pay_h5(h5_url, back, cancel=True)
    assert cancelled.status_code == 302 and cancelled.headers["Location"] == back
    assert wechat.query("H5T002")["trade_state"] == "NOTPAY" and not Delivery.objects.exists()


def test_without_a_redirect_url_the_h5_page_returns_to_the_page_that_opened_it(wechat):
    h5_url = wechat.h5("H5T003")
    opener = merchant_page("/pay/H5T003/")
    paid = pay_h5(h5_url, None, referer=opener)
    assert paid.status_code == 302 and paid.headers["Location"] == opener
    assert wechat.query("H5T003")["trade_state"] == "SUCCESS"


def test_the_h5_page_refuses_what_wechats_middle_page_refuses(wechat):
    h5_url = wechat.h5("H5T004")
    back = merchant_page("/orders/H5T004/")
    refusals = [
        (open_h5(h5_url, back, user_agent=WECHAT), "请在微信外打开订单，进行支付"),
        (open_h5(h5_url, back, referer=None), "商家参数格式有误，请联系商家解决"),
        (open_h5(h5_url, back, referer="https://elsewhere.example/page"), "商家存在未配置的参数，请联系商家解决"),
        (open_h5(h5_url, "https://elsewhere.example/back"), "商家存在未配置的参数，请联系商家解决"),
        (open_h5(h5_url, back, encode=False), "系统繁忙，请稍后再试"),
        (open_h5(h5_url, back, encode=False, user_agent=IPHONE), "签名验证失败"),
        (open_h5(h5_url.split("&package=")[0], back), "系统繁忙，请稍后再试"),
    ]
    for response, message in refusals:
        assert response.status_code == 200 and page_error(response) == message
        assert 'data-testid="phone-pay"' not in response.text
    # the pay form itself sends nobody anywhere but the H5 domain
    trade = Trade.objects.get(out_trade_no="H5T004")
    data = {
        "prepay_id": trade.prepay_id,
        "package": trade.pay_token,
        "back": "https://elsewhere.example/",
        "openid": PAYER,
        "action": "pay",
    }
    answer = requests.post(settings.SITE_URL + "/sandbox/h5/pay", data=data, allow_redirects=False, timeout=10)
    assert answer.status_code == 200 and page_error(answer) == "商家存在未配置的参数，请联系商家解决"
    assert wechat.query("H5T004")["trade_state"] == "NOTPAY"


def test_an_h5_url_lives_five_minutes_and_a_new_order_replaces_it(wechat):
    first = wechat.h5("H5T005")
    Trade.objects.filter(out_trade_no="H5T005").update(pay_token_expires_at=timezone.now())
    assert page_error(open_h5(first)) == "支付请求已失效，请重新发起支付"
    second = wechat.h5("H5T005")
    assert second != first and page_error(open_h5(second)) is None
    assert page_error(open_h5(first)) == "支付请求已失效，请重新发起支付"
    paid = pay_h5(second, merchant_page("/done/"))
    assert paid.status_code == 302 and wechat.query("H5T005")["trade_state"] == "SUCCESS"
    assert page_error(open_h5(second)) == "该订单已支付，请勿重复支付"


def test_an_h5_url_another_wechat_opened_first_is_refused(wechat):
    Fault.objects.create(out_trade_no="H5T006", end_state="USERPAYING")
    h5_url = wechat.h5("H5T006")
    assert pay_h5(h5_url, merchant_page("/x/"), "oFirst").status_code == 302  # USERPAYING: back to the merchant
    refused = pay_h5(h5_url, merchant_page("/x/"), "oSecond")
    assert refused.status_code == 200 and page_error(refused) == "系统繁忙，请稍后再试"


def test_a_payerror_on_the_h5_page_says_so_and_links_back(wechat):
    Fault.objects.create(out_trade_no="H5T007", end_state="PAYERROR")
    failed = pay_h5(wechat.h5("H5T007"), merchant_page("/x/"))
    assert failed.status_code == 200 and 'data-state="PAYERROR"' in failed.text and merchant_page("/x/") in failed.text
    assert wechat.query("H5T007")["trade_state"] == "PAYERROR"


def test_v2_mweb_needs_a_well_formed_scene_info(wxpay):
    def order(scene_info):
        extra = {} if scene_info is None else {"scene_info": scene_info}
        return wxpay.order.create(
            trade_type="MWEB",
            body="余额充值",
            total_fee=1000,
            notify_url="http://127.0.0.1:9/n",
            client_ip="203.0.113.9",
            out_trade_no="H5V201",
            **extra,
        )

    for scene_info in (
        None,
        {"store_info": {"id": "1"}},
        {"h5_info": {"type": "PC"}},
        {"h5_info": {"type": "Wap", "wap_name": "x"}},
        {"h5_info": "Wap"},
    ):
        with pytest.raises(WeChatPayException) as refused:
            order(scene_info)
        assert refused.value.errcode == "PARAM_ERROR", scene_info
    with pytest.raises(WeChatPayException):
        wxpay.order.create(
            trade_type="MWEB",
            body="余额充值",
            total_fee=1000,
            notify_url="http://127.0.0.1:9/n",
            client_ip="1.2.3.4",
            out_trade_no="H5V201",
            scene_info="not json",
        )
    assert not Trade.objects.exists()
    assert order({"h5_info": {"type": "IOS", "app_name": "余额充值", "bundle_id": "com.example"}})["mweb_url"]


@pytest.mark.parametrize(
    ("scene_info", "field"),
    [
        (None, "scene_info"),
        ({"h5_info": {"type": "Wap"}}, "scene_info/payer_client_ip"),
        ({"payer_client_ip": "203.0.113.9"}, "scene_info/h5_info"),
        ({"payer_client_ip": "203.0.113.9", "h5_info": {}}, "scene_info/h5_info/type"),
        ({"payer_client_ip": "203.0.113.9", "h5_info": {"type": "PC"}}, "scene_info/h5_info/type"),
    ],
)
def test_v3_h5_needs_scene_info_with_the_payers_ip_and_h5_info_type(sandbox_url, scene_info, field):
    body = {
        "appid": settings.WECHAT_APPID,
        "mchid": settings.WECHAT_MCH_ID,
        "description": "余额充值",
        "out_trade_no": "H5V301",
        "notify_url": "http://127.0.0.1:9/notify",
        "amount": {"total": 1000, "currency": "CNY"},
    }
    if scene_info is not None:
        body["scene_info"] = scene_info
    answer = assert_wechat_answer(post_json(sandbox_url, "/v3/pay/transactions/h5", body), 400, "PARAM_ERROR")
    assert answer["detail"]["field"] == field and answer["detail"]["location"] == "body"
    assert not Trade.objects.exists()


def test_the_h5_no_auth_switch_refuses_h5_orders_and_native_still_works(wechat):
    Fault.objects.create(out_trade_no="", h5_no_auth=True)
    with pytest.raises(Refused) as refused:
        wechat.h5("H5T008")
    if wechat.api == "v2":
        assert refused.value.code == "NOAUTH"  # WeChat's v2 code, without the underscore
    else:
        assert refused.value.status == 403 and refused.value.code == "NO_AUTH" and refused.value.answer["message"]
    assert not Trade.objects.exists()
    assert wechat.native("H5T008").startswith(settings.SITE_URL)  # the fallback
    Fault.objects.create(out_trade_no="H5T009", h5_no_auth=False)  # a trade's own row wins over the global one
    assert wechat.h5("H5T009")


def test_v2_no_auth_is_a_signed_business_failure(wxpay):
    Fault.objects.create(out_trade_no="H5T010", h5_no_auth=True)
    params = {
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": protocol.nonce(),
        "body": "余额充值",
        "out_trade_no": "H5T010",
        "total_fee": "1000",
        "spbill_create_ip": "203.0.113.9",
        "notify_url": "http://127.0.0.1:9/n",
        "trade_type": "MWEB",
        "scene_info": json.dumps(WAP),
    }
    params["sign"] = protocol.sign(params, settings.WECHAT_API_KEY)
    answer = protocol.parse_xml(
        requests.post(wxpay.API_BASE_URL + "pay/unifiedorder", data=protocol.to_xml(params).encode(), timeout=10).content
    )
    assert answer["return_code"] == "SUCCESS" and answer["result_code"] == "FAIL"
    assert answer["err_code"] == "NOAUTH" and answer["err_code_des"] == "商户无此接口权限"
    assert protocol.verify(answer, settings.WECHAT_API_KEY)


def test_the_fault_form_turns_h5_no_auth_on(client):
    response = client.post(
        "/sandbox/", {"out_trade_no": "", "drop_notifies": "0", "notify_delay_seconds": "0", "h5_no_auth": "True"}
    )
    assert response.status_code == 302 and Fault.effective("ANY").h5_no_auth
    page = client.get("/sandbox/").content.decode()
    assert "H5 支付未开通（NO_AUTH）" in page and '<option value="True" selected>' in page
    client.post("/sandbox/", {"out_trade_no": "", "drop_notifies": "0", "notify_delay_seconds": "0", "h5_no_auth": "False"})
    assert not Fault.effective("ANY").h5_no_auth


# --- what queries and bills say of each trade type -------------------------------------------


def test_the_bill_names_each_trade_type_as_wechat_does(wechat, wxpay, sandbox_url):
    with clear_of_midnight():  # the trades are read back from today's bill
        bill_of_three_trade_types(wechat, wxpay, sandbox_url)


def bill_of_three_trade_types(wechat, wxpay, sandbox_url):
    wechat.jsapi("TTY001")
    services.pay(Trade.objects.get(out_trade_no="TTY001").prepay_id, settings.WECHAT_APPID)
    assert 'data-state="SUCCESS"' in scan_and_pay(wechat.native("TTY002")).text
    assert pay_h5(wechat.h5("TTY003"), merchant_page("/x/")).status_code == 302
    rows, _ = read(BillReader(wechat.api, sandbox_url, wxpay).bill(today()))
    assert {row["商户订单号"]: row["交易类型"] for row in rows} == {"TTY001": "JSAPI", "TTY002": "NATIVE", "TTY003": "MWEB"}
    assert {row["商户订单号"]: row["用户标识"] for row in rows}["TTY002"] == PAYER

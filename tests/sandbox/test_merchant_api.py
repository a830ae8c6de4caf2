"""The sandbox's merchant API, driven over real HTTP by wechatpy's own WeChatPay."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from wechatpy.exceptions import WeChatPayException

from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.models import Refund, Trade
from tests.helpers import create_order
from wxproto import v2 as wxpay_protocol

pytestmark = pytest.mark.django_db(transaction=True)
EXPIRE = (datetime.now(services.BEIJING) + timedelta(hours=1)).replace(microsecond=0)


def order(wxpay_client, out_trade_no, **extra):
    extra.setdefault("time_start", EXPIRE - timedelta(hours=1))
    extra.setdefault("time_expire", EXPIRE)
    return create_order(wxpay_client, out_trade_no, **extra)


def raw(url, fields, key=None, sign_type=wxpay_protocol.MD5):
    """POST hand-made XML, signed with our key unless told otherwise."""
    fields = {"appid": settings.WECHAT_APPID, "mch_id": settings.WECHAT_MCH_ID, "nonce_str": wxpay_protocol.nonce(), **fields}
    fields = {k: v for k, v in fields.items() if v is not None}
    fields["sign"] = wxpay_protocol.sign(fields, key or settings.WECHAT_API_KEY, sign_type)
    return post(url, wxpay_protocol.to_xml(fields).encode())


def post(url, body: bytes, **kwargs):
    response = requests.post(url, data=body, timeout=10, **kwargs)
    assert response.status_code == 200
    return wxpay_protocol.parse_xml(response.content)


def business_error(exc_info) -> str:
    return exc_info.value.errcode


def test_create_query_and_signed_answers(wxpay, sandbox_url):
    created = order(wxpay, "T100")
    assert created["result_code"] == "SUCCESS" and created["prepay_id"].startswith("wx")
    assert wxpay.check_signature(created)
    queried = wxpay.order.query(out_trade_no="T100")
    assert queried["trade_state"] == "NOTPAY" and queried["total_fee"] == "1000"
    assert wxpay.check_signature(queried)


def test_the_same_out_trade_no_with_the_same_parameters_gets_the_same_prepay_id(wxpay):
    first = order(wxpay, "T101")
    again = order(wxpay, "T101")
    assert again["prepay_id"] == first["prepay_id"]
    assert Trade.objects.filter(out_trade_no="T101").count() == 1


def test_the_same_out_trade_no_with_other_parameters_is_a_duplicate(wxpay):
    order(wxpay, "T102")
    with pytest.raises(WeChatPayException) as exc:
        order(wxpay, "T102", total_fee=2000)
    assert business_error(exc) == "INVALID_REQUEST" and "商户订单号重复" in exc.value.errmsg


def test_an_expired_prepay_id_is_replaced_on_reorder(wxpay):
    first = order(wxpay, "T103")
    Trade.objects.filter(out_trade_no="T103").update(prepay_expires_at=timezone.now() - timedelta(seconds=1))
    again = order(wxpay, "T103")
    assert again["prepay_id"] != first["prepay_id"]


def test_a_wrong_key_is_a_sign_error(wxpay):
    wxpay.api_key = "0" * 32
    with pytest.raises(WeChatPayException) as exc:
        order(wxpay, "T104")
    assert exc.value.return_code == "FAIL" and exc.value.return_msg == "签名错误"
    assert not Trade.objects.exists()


def test_hmac_sha256_requests_get_hmac_signed_answers(wxpay):
    created = order(wxpay, "T105", sign_type="HMAC-SHA256")
    assert created["result_code"] == "SUCCESS"
    assert wxpay_protocol.verify(created, settings.WECHAT_API_KEY, wxpay_protocol.HMAC_SHA256)
    assert not wxpay_protocol.verify(created, settings.WECHAT_API_KEY, wxpay_protocol.MD5)
    assert Trade.objects.get(out_trade_no="T105").sign_type == "HMAC-SHA256"


def test_a_missing_sign_is_a_sign_error(sandbox_url):
    body = wxpay_protocol.to_xml({"appid": settings.WECHAT_APPID, "mch_id": settings.WECHAT_MCH_ID, "out_trade_no": "X"})
    assert post(sandbox_url + "pay/orderquery", body.encode()) == {"return_code": "FAIL", "return_msg": "签名错误"}


def test_missing_fields_are_named(sandbox_url):
    answer = raw(sandbox_url + "pay/unifiedorder", {"out_trade_no": "T106", "total_fee": "1"})
    assert answer["return_code"] == "FAIL" and answer["return_msg"].startswith("缺少参数")


def test_another_appid_or_mch_id_is_refused(sandbox_url):
    answer = raw(sandbox_url + "pay/orderquery", {"appid": "wx_someone_else", "out_trade_no": "T"})
    assert answer == {"return_code": "FAIL", "return_msg": "appid和mch_id不匹配"}
    answer = raw(sandbox_url + "pay/orderquery", {"mch_id": "1000000000", "out_trade_no": "T"})
    assert answer == {"return_code": "FAIL", "return_msg": "mch_id参数格式错误"}


UNIFIED = {
    "body": "充值",
    "out_trade_no": "T107",
    "total_fee": "100",
    "spbill_create_ip": "127.0.0.1",
    "notify_url": "https://pay.example.com/payments/wechat/notify/",
    "trade_type": "JSAPI",
    "openid": "oUser",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"openid": None}, "JSAPI支付必须传openid"),
        ({"total_fee": "0"}, "total_fee"),
        ({"total_fee": "-1"}, "total_fee"),
        ({"total_fee": "1.5"}, "total_fee"),
        ({"total_fee": "abc"}, "total_fee"),
        ({"notify_url": "https://pay.example.com/notify/?order=1"}, "notify_url"),
        ({"notify_url": "/relative/notify/"}, "notify_url"),
        ({"out_trade_no": "T" * 33}, "out_trade_no"),
        ({"out_trade_no": "T 107"}, "out_trade_no"),
        ({"out_trade_no": "订单107"}, "out_trade_no"),
        ({"trade_type": "CASH"}, "trade_type"),
        ({"time_expire": "20200101000000"}, "time_expire"),
        ({"time_expire": "tomorrow"}, "time_expire"),
    ],
)
def test_unifiedorder_validates_fields_as_wechat_does(sandbox_url, change, message):
    answer = raw(sandbox_url + "pay/unifiedorder", {**UNIFIED, **change})
    assert answer["return_code"] == "SUCCESS" and answer["result_code"] == "FAIL"
    assert answer["err_code"] == "PARAM_ERROR" and message in answer["err_code_des"]
    assert wxpay_protocol.verify(answer, settings.WECHAT_API_KEY)
    assert not Trade.objects.exists()


def test_a_paid_order_cannot_be_ordered_or_closed_again(wxpay):
    created = order(wxpay, "T108")
    services.pay(created["prepay_id"], settings.WECHAT_APPID)
    queried = wxpay.order.query(out_trade_no="T108")
    assert queried["trade_state"] == "SUCCESS" and queried["transaction_id"] and queried["time_end"]
    assert wxpay.order.query(transaction_id=queried["transaction_id"])["out_trade_no"] == "T108"
    with pytest.raises(WeChatPayException) as exc:
        order(wxpay, "T108")
    assert business_error(exc) == "ORDERPAID"
    with pytest.raises(WeChatPayException) as exc:
        wxpay.order.close("T108")
    assert business_error(exc) == "ORDERPAID"


def test_an_order_closed_in_its_first_five_minutes_is_closed_as_wechat_accepts_it(wxpay):
    order(wxpay, "T109")
    closed = wxpay.order.close("T109")  # WeChat has no error code for an early close
    assert closed["result_code"] == "SUCCESS" and wxpay_protocol.verify(closed, settings.WECHAT_API_KEY)
    assert wxpay.order.query(out_trade_no="T109")["trade_state"] == "CLOSED"
    with pytest.raises(WeChatPayException) as exc:
        wxpay.order.close("T109")
    assert business_error(exc) == "ORDERCLOSED"
    with pytest.raises(WeChatPayException) as exc:
        order(wxpay, "T109")
    assert business_error(exc) == "ORDERCLOSED"


def test_an_unknown_order_does_not_exist(wxpay):
    with pytest.raises(WeChatPayException) as exc:
        wxpay.order.query(out_trade_no="NOPE")
    assert business_error(exc) == "ORDERNOTEXIST"


def test_refunds_up_to_what_is_left_and_never_twice(wxpay):
    created = order(wxpay, "T110", total_fee=1000)
    services.pay(created["prepay_id"], settings.WECHAT_APPID)
    first = wxpay.refund.apply(total_fee=1000, refund_fee=600, out_refund_no="R1", out_trade_no="T110")
    again = wxpay.refund.apply(total_fee=1000, refund_fee=600, out_refund_no="R1", out_trade_no="T110")
    assert first["refund_id"] == again["refund_id"]
    assert Refund.objects.filter(trade__out_trade_no="T110").count() == 1
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=401, out_refund_no="R2", out_trade_no="T110")
    assert business_error(exc) == "ERROR"
    wxpay.refund.apply(total_fee=1000, refund_fee=400, out_refund_no="R2", out_trade_no="T110")
    Refund.objects.update(settle_at=timezone.now())  # both due: the query settles them
    queried = wxpay.refund.query(out_trade_no="T110")
    assert queried["refund_count"] == "2"
    assert {queried["refund_status_0"], queried["refund_status_1"]} == {"SUCCESS"}
    assert wxpay.order.query(out_trade_no="T110")["trade_state"] == "REFUND"
    assert Trade.objects.get(out_trade_no="T110").refunded_fee == 1000


def test_an_unpaid_order_cannot_be_refunded(wxpay):
    order(wxpay, "T111")
    with pytest.raises(WeChatPayException) as exc:
        wxpay.refund.apply(total_fee=1000, refund_fee=1, out_refund_no="R3", out_trade_no="T111")
    assert business_error(exc) == "TRADE_STATE_ERROR"


def test_downloadbill_lists_the_days_paid_trades(wxpay, sandbox_url):
    created = order(wxpay, "T112", total_fee=1990)
    services.pay(created["prepay_id"], settings.WECHAT_APPID)
    today = datetime.now(services.BEIJING).strftime("%Y%m%d")
    fields = {
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": wxpay_protocol.nonce(),
        "bill_date": today,
        "bill_type": "ALL",
    }
    fields["sign"] = wxpay_protocol.sign(fields, settings.WECHAT_API_KEY)
    text = requests.post(sandbox_url + "pay/downloadbill", data=wxpay_protocol.to_xml(fields).encode(), timeout=10).text
    lines = text.strip().splitlines()
    assert lines[0].startswith("交易时间,公众账号ID")
    assert "`T112" in lines[1] and "`19.90" in lines[1]
    assert lines[-1].startswith("`1,`19.90")
    fields.update(bill_date="20000101", nonce_str=wxpay_protocol.nonce())
    fields["sign"] = wxpay_protocol.sign(fields, settings.WECHAT_API_KEY)
    answer = post(sandbox_url + "pay/downloadbill", wxpay_protocol.to_xml(fields).encode())
    assert answer == {"return_code": "FAIL", "return_msg": "No Bill Exist"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "post数据为空"),
        (b"hello", "XML格式错误"),
        (b"<xml><a>1</a>", "XML格式错误"),
        ("<xml><body>充值</body></xml>".encode("gbk"), "编码格式错误"),
        (b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><appid>&x;</appid></xml>', "XML格式错误"),
        (b"<xml><appid>" + b"a" * 100_000 + b"</appid></xml>", "XML格式错误"),
        (b"<xml><appid>1</appid><appid>2</appid></xml>", "XML格式错误"),
    ],
)
def test_malformed_requests_get_wechats_answer_not_a_500(sandbox_url, body, message):
    assert post(sandbox_url + "pay/unifiedorder", body) == {"return_code": "FAIL", "return_msg": message}


def test_a_get_is_refused(sandbox_url):
    response = requests.get(sandbox_url + "pay/orderquery", timeout=10)
    assert response.status_code == 200
    assert wxpay_protocol.parse_xml(response.content) == {"return_code": "FAIL", "return_msg": "请使用post方法"}

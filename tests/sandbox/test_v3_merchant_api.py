"""The sandbox's API v3, driven over real HTTP by an independent client (wechatpayv3) and by
hand-signed requests: WeChat's authentication, answers, signatures and error codes.

wechatpayv3's request() raises when a 2xx answer's signature does not verify, so each of
its successful calls proves the answer was signed with the key it expects. Error answers
(which it does not check) are verified here with `cryptography` directly.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from django.conf import settings
from django.utils import timezone
from wechatpayv3 import WeChatPay, WeChatPayType

from devtools.wechat_sandbox import conf
from devtools.wechat_sandbox.models import Fault, Refund, Trade

pytestmark = pytest.mark.django_db(transaction=True)

OPENID = "oSandboxUser000000000000001"
RFC3339_BEIJING = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")


# --- helpers shared by the v3 test modules ----------------------------------------------------


def keys():
    return conf.v3_keys()


def v3_client(sandbox_url: str, *, public_key: bool = True, cert_dir: Path | None = None) -> WeChatPay:
    """wechatpayv3 with our merchant's v3 credentials, pointed at the sandbox.

    With `public_key` it verifies with the 微信支付公钥 and asks for it (Wechatpay-Serial);
    without, it is a platform-certificate merchant whose certificate is in `cert_dir`.
    """
    if public_key:  # the same for every test of a process: its RSA key takes 40 ms to parse
        return _public_key_client(sandbox_url, str(keys().files.directory))
    return _client(sandbox_url, public_key=False, cert_dir=cert_dir)


@functools.lru_cache(maxsize=4)
def _public_key_client(sandbox_url: str, keys_directory: str) -> WeChatPay:
    return _client(sandbox_url, public_key=True)


def _client(sandbox_url: str, *, public_key: bool, cert_dir: Path | None = None) -> WeChatPay:
    files = keys().files
    options = {}
    if public_key:
        options.update(public_key=Path(files.pay_public_key).read_text(), public_key_id=files.pay_public_key_id)
    else:
        options.update(cert_dir=str(cert_dir))
    client = WeChatPay(
        wechatpay_type=WeChatPayType.JSAPI,
        mchid=settings.WECHAT_MCH_ID,
        private_key=Path(files.merchant_key).read_text(),
        cert_serial_no=files.merchant_serial,
        apiv3_key=files.apiv3_key,
        appid=settings.WECHAT_APPID,
        notify_url="http://127.0.0.1:9/notify",
        timeout=10,
        **options,
    )
    client._core._gate_way = sandbox_url.rstrip("/")  # its base URL is a private attribute
    return client


def certificate_dir(tmp_path: Path) -> Path:
    """A directory holding the platform certificate, as a certificate-mode merchant keeps it."""
    directory = tmp_path / "wechatpay-certs"
    directory.mkdir()
    shutil.copy(keys().files.platform_certificate, directory / f"{keys().files.platform_serial}.pem")
    return directory


def prepay(client: WeChatPay, out_trade_no: str, total: int = 1000, **extra) -> tuple[int, dict]:
    code, text = client.pay(
        description="余额充值", out_trade_no=out_trade_no, amount={"total": total}, payer={"openid": OPENID}, **extra
    )
    return code, json.loads(text)


def query(client: WeChatPay, out_trade_no: str) -> tuple[int, dict]:
    code, text = client.query(out_trade_no=out_trade_no)
    return code, json.loads(text)


def pay_in_cashier(sandbox_url: str, client: WeChatPay, prepay_id: str) -> dict:
    """The user pays in the sandbox's cashier with v3 (RSA) page parameters."""
    params = {
        "appId": settings.WECHAT_APPID,
        "timeStamp": str(int(time.time())),
        "nonceStr": uuid.uuid4().hex,
        "package": f"prepay_id={prepay_id}",
        "signType": "RSA",
    }
    params["paySign"] = client.sign([params["appId"], params["timeStamp"], params["nonceStr"], params["package"]])
    return requests.post(sandbox_url + "cashier/pay", json={**params, "outcome": "pay"}, timeout=10).json()


def paid_trade(sandbox_url: str, client: WeChatPay, out_trade_no: str, total: int = 1000, **extra) -> dict:
    code, answer = prepay(client, out_trade_no, total, **extra)
    assert code == 200, answer
    assert pay_in_cashier(sandbox_url, client, answer["prepay_id"]) == {"err_msg": "get_brand_wcpay_request:ok"}
    return answer


def merchant_private_key():
    return _private_key(str(keys().files.merchant_key))


@functools.cache
def _private_key(path: str):
    return load_pem_private_key(Path(path).read_bytes(), password=None)  # 40 ms a parse: once per process


def signed_request(
    sandbox_url: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    private_key=None,
    serial: str | None = None,
    mchid: str | None = None,
    timestamp: int | None = None,
    signed_path: str | None = None,
    authorization: str | None = None,
    signature: str | None = None,
    headers: dict | None = None,
) -> requests.Response:
    """A v3 request signed by hand, each part of it overridable to make it wrong."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = uuid.uuid4().hex.upper()
    message = f"{method}\n{signed_path or path}\n{ts}\n{nonce}\n".encode() + body + b"\n"
    if signature is None:
        raw = (private_key or merchant_private_key()).sign(message, padding.PKCS1v15(), hashes.SHA256())
        signature = base64.b64encode(raw).decode()
    if authorization is None:
        authorization = (
            f'WECHATPAY2-SHA256-RSA2048 mchid="{mchid or settings.WECHAT_MCH_ID}",nonce_str="{nonce}",'
            f'signature="{signature}",timestamp="{ts}",serial_no="{serial or keys().merchant_serial}"'
        )
    return requests.request(
        method,
        sandbox_url.rstrip("/") + path,
        data=body or None,
        timeout=10,
        headers={
            "Authorization": authorization,
            "Accept": "application/json",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )


def answer_key(serial: str):
    """WeChat's public key for a Wechatpay-Serial, read from the merchant's copies."""
    files = keys().files
    if serial == files.pay_public_key_id:
        return load_pem_public_key(Path(files.pay_public_key).read_bytes())
    certificate = x509.load_pem_x509_certificate(Path(files.platform_certificate).read_bytes())
    assert int(serial, 16) == certificate.serial_number, serial
    return certificate.public_key()


def verifies(headers, body: bytes) -> bool:
    """docs/wechat-pay-v3.md#3-verifying-answers-and-notifies, done independently of the sandbox and of wechatpayv3."""
    if headers.get("Wechatpay-Signature-Type") != "WECHATPAY2-SHA256-RSA2048":
        return False
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + body + b"\n"
    try:
        answer_key(headers["Wechatpay-Serial"]).verify(
            base64.b64decode(headers["Wechatpay-Signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return False
    return True


def assert_wechat_answer(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Request-ID"]
    assert verifies(response.headers, response.content), "the answer's signature does not verify"
    answer = response.json() if response.content else {}
    if code is not None:
        assert answer["code"] == code, answer
        assert answer["message"]
    return answer


def jsapi_body(number: str, **overrides) -> dict:
    body = {
        "appid": settings.WECHAT_APPID,
        "mchid": settings.WECHAT_MCH_ID,
        "description": "余额充值",
        "out_trade_no": number,
        "notify_url": "http://127.0.0.1:9/notify",
        "amount": {"total": 1000},
        "payer": {"openid": OPENID},
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def post_json(sandbox_url: str, path: str, body, **kwargs) -> requests.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return signed_request(sandbox_url, "POST", path, raw, **kwargs)


@pytest.fixture
def v3pay(sandbox_url):
    return v3_client(sandbox_url)


# --- prepay, query, close -------------------------------------------------------------------


def test_it_places_a_jsapi_order_and_queries_it_with_signed_answers(v3pay):
    code, created = prepay(v3pay, "V3T100", attach="充值")
    assert code == 200 and created["prepay_id"].startswith("wx") and set(created) == {"prepay_id"}
    trade = Trade.objects.get(out_trade_no="V3T100")
    assert trade.api_version == "v3" and trade.total_fee == 1000 and trade.openid == OPENID and trade.attach == "充值"
    code, queried = query(v3pay, "V3T100")
    assert code == 200
    assert queried["trade_state"] == "NOTPAY" and queried["trade_state_desc"] == "订单未支付"
    assert queried["appid"] == settings.WECHAT_APPID and queried["mchid"] == settings.WECHAT_MCH_ID
    assert queried["amount"]["total"] == 1000 and queried["attach"] == "充值"
    assert "transaction_id" not in queried and "success_time" not in queried


def test_the_same_out_trade_no_with_the_same_parameters_gets_the_same_prepay_id(v3pay, sandbox_url):
    expire = (datetime.now().astimezone() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    first = prepay(v3pay, "V3T101", time_expire=expire)[1]
    assert prepay(v3pay, "V3T101", time_expire=expire)[1]["prepay_id"] == first["prepay_id"]
    assert Trade.objects.filter(out_trade_no="V3T101").count() == 1
    code, text = v3pay.pay(
        description="余额充值", out_trade_no="V3T101", amount={"total": 2000}, payer={"openid": OPENID}, time_expire=expire
    )
    assert code == 403 and json.loads(text)["code"] == "OUT_TRADE_NO_USED"
    assert "不一致" in json.loads(text)["message"]
    again = post_json(
        sandbox_url, "/v3/pay/transactions/jsapi", jsapi_body("V3T101", time_expire=expire, description="另一个商品")
    )
    assert_wechat_answer(again, 403, "OUT_TRADE_NO_USED")


def test_a_paid_order_answers_its_full_v3_shape(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3T102", total=1990, attach="a1")
    code, queried = query(v3pay, "V3T102")
    assert code == 200
    trade = Trade.objects.get(out_trade_no="V3T102")
    assert queried["trade_state"] == "SUCCESS" and queried["trade_state_desc"] == "支付成功"
    assert queried["transaction_id"] == trade.transaction_id and queried["trade_type"] == "JSAPI"
    assert queried["bank_type"] and queried["attach"] == "a1" and queried["payer"] == {"openid": OPENID}
    assert RFC3339_BEIJING.match(queried["success_time"]), queried["success_time"]
    assert queried["amount"] == {"total": 1990, "payer_total": 1990, "currency": "CNY", "payer_currency": "CNY"}
    by_id = json.loads(v3pay.query(transaction_id=trade.transaction_id)[1])
    assert by_id == queried


def test_a_paid_order_cannot_be_placed_again_nor_closed(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3T103")
    code, answer = prepay(v3pay, "V3T103")
    assert (code, answer["code"]) == (403, "ORDERPAID")
    code, text = v3pay.close(out_trade_no="V3T103")
    assert (code, json.loads(text)["code"]) == (403, "ORDERPAID")
    assert Trade.objects.get(out_trade_no="V3T103").state == Trade.SUCCESS


def test_close_answers_204_with_a_signed_empty_body(v3pay, sandbox_url):
    prepay(v3pay, "V3T104")
    code, text = v3pay.close(out_trade_no="V3T104")  # a 2xx: wechatpayv3 verified the signature over ""
    assert code == 204 and text in ("", b"")
    assert query(v3pay, "V3T104")[1]["trade_state"] == "CLOSED"
    again = post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3T104/close", {"mchid": settings.WECHAT_MCH_ID})
    assert_wechat_answer(again, 400, "ORDER_CLOSED")
    assert prepay(v3pay, "V3T104")[1]["code"] == "ORDER_CLOSED"
    prepay(v3pay, "V3T105")
    closed = post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3T105/close", {"mchid": settings.WECHAT_MCH_ID})
    assert_wechat_answer(closed, 204)
    assert closed.content == b"" and closed.headers["Wechatpay-Signature"]


def test_unknown_orders_are_404_order_not_exist(v3pay, sandbox_url):
    assert_wechat_answer(
        signed_request(sandbox_url, "GET", f"/v3/pay/transactions/out-trade-no/NOPE01?mchid={settings.WECHAT_MCH_ID}"),
        404,
        "ORDER_NOT_EXIST",
    )
    code, text = v3pay.close(out_trade_no="NOPE01")
    assert (code, json.loads(text)["code"]) == (404, "ORDER_NOT_EXIST")
    assert v3pay.query(transaction_id="4200000000000000000000000000")[0] == 404


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"description": "字" * 128}, "PARAM_ERROR"),
        ({"description": None}, "PARAM_ERROR"),
        ({"out_trade_no": "A1"}, "PARAM_ERROR"),  # 6 to 32 characters
        ({"out_trade_no": "V3 T 106 !"}, "PARAM_ERROR"),
        ({"time_expire": "20300101120000"}, "PARAM_ERROR"),  # v2's format is not RFC 3339
        ({"time_expire": "2030-01-01T12:00:00"}, "PARAM_ERROR"),  # no time zone
        ({"time_expire": "2020-01-01T12:00:00+08:00"}, "PARAM_ERROR"),  # already past
        ({"notify_url": "https://example.com/notify?order=1"}, "PARAM_ERROR"),
        ({"notify_url": "notify"}, "PARAM_ERROR"),
        ({"amount": {"total": 0}}, "PARAM_ERROR"),
        ({"amount": {"total": "1000"}}, "PARAM_ERROR"),
        ({"amount": {"total": 10.5}}, "PARAM_ERROR"),
        ({"amount": {"total": True}}, "PARAM_ERROR"),
        ({"amount": {"total": 10**20}}, "PARAM_ERROR"),
        ({"amount": {"total": 1000, "currency": "USD"}}, "PARAM_ERROR"),
        ({"amount": None}, "PARAM_ERROR"),
        ({"payer": {}}, "PARAM_ERROR"),
        ({"payer": None}, "PARAM_ERROR"),
        ({"mchid": "1230000999"}, "PARAM_ERROR"),
        ({"appid": "wx0000000000000000"}, "APPID_MCHID_NOT_MATCH"),
    ],
)
def test_jsapi_validates_as_wechat_does(sandbox_url, overrides, code):
    answer = assert_wechat_answer(
        post_json(sandbox_url, "/v3/pay/transactions/jsapi", jsapi_body("V3T106", **overrides)), 400, code
    )
    if code == "PARAM_ERROR":
        assert answer["message"].startswith("输入源“/body/") and answer["detail"]["location"] == "body"
    assert not Trade.objects.exists()


def test_the_mini_programs_appid_is_the_merchants_too(sandbox_url):
    body = jsapi_body("V3T107", appid=settings.WECHAT_MINIPROGRAM_APPID)
    assert assert_wechat_answer(post_json(sandbox_url, "/v3/pay/transactions/jsapi", body), 200)["prepay_id"]


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_400(sandbox_url, body):
    assert_wechat_answer(post_json(sandbox_url, "/v3/pay/transactions/jsapi", body), 400, "PARAM_ERROR")


def test_a_query_needs_our_mchid(sandbox_url, v3pay):
    prepay(v3pay, "V3T108")
    path = "/v3/pay/transactions/out-trade-no/V3T108"
    assert_wechat_answer(signed_request(sandbox_url, "GET", path), 400, "PARAM_ERROR")
    assert_wechat_answer(signed_request(sandbox_url, "GET", path + "?mchid=1230000999"), 400, "PARAM_ERROR")
    ok = assert_wechat_answer(signed_request(sandbox_url, "GET", f"{path}?mchid={settings.WECHAT_MCH_ID}"), 200)
    assert ok["out_trade_no"] == "V3T108"


# --- authentication -------------------------------------------------------------------------

QUERY = "/v3/pay/transactions/out-trade-no/V3T200?mchid="


@functools.cache  # one stranger's key is enough, and each takes ~50 ms to make
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "wrong",
    [
        {"private_key": "other"},
        {"serial": "0" * 40},
        {"mchid": "1230000999"},
        {"timestamp": -6 * 60},
        {"timestamp": 6 * 60},
        {"signed_path": "/sandbox" + QUERY},  # signed with the mount prefix: WeChat's path is after it
        {"signed_path": "/v3/pay/transactions/out-trade-no/V3T200"},  # the query string is signed too
        {"signature": "bm90IGEgc2lnbmF0dXJl"},
        {"signature": "***"},
        {"authorization": ""},
        {"authorization": "Bearer abc"},
        {"authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n"'},
        {"authorization": "WECHATPAY2-SHA256-RSA2048 mchid=1230000109"},
        {
            "authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="a",mchid="b",nonce_str="n",signature="s",timestamp="1",'
            'serial_no="x"'
        },
        {"authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="a",nonce_str="n",signature="s",timestamp="soon",serial_no="x"'},
    ],
)
def test_a_request_that_is_not_signed_right_is_401_sign_error_and_the_answer_is_signed(sandbox_url, wrong):
    options = dict(wrong)
    if options.get("private_key") == "other":
        options["private_key"] = other_key()
    if "timestamp" in options:
        options["timestamp"] = int(time.time()) + options["timestamp"]
    path = QUERY + settings.WECHAT_MCH_ID
    if "signed_path" in options and options["signed_path"].endswith("mchid="):
        options["signed_path"] += settings.WECHAT_MCH_ID
    answer = assert_wechat_answer(signed_request(sandbox_url, "GET", path, **options), 401, "SIGN_ERROR")
    if "timestamp" in wrong:
        assert "5分钟" in answer["message"]
    if "authorization" in wrong and wrong["authorization"]:
        assert "Authorization" in answer["message"]


def test_the_items_of_authorization_may_come_in_any_order(sandbox_url):
    path = "/v3/pay/transactions/jsapi"
    body = json.dumps(jsapi_body("V3T201")).encode()
    ts, nonce = str(int(time.time())), "N" * 32
    message = f"POST\n{path}\n{ts}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(merchant_private_key().sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    authorization = (
        f'WECHATPAY2-SHA256-RSA2048 serial_no="{keys().merchant_serial}", timestamp="{ts}",'
        f'signature="{signature}",nonce_str="{nonce}",mchid="{settings.WECHAT_MCH_ID}"'
    )
    answer = assert_wechat_answer(signed_request(sandbox_url, "POST", path, body, authorization=authorization), 200)
    assert answer["prepay_id"]


def test_the_signed_body_must_be_the_bytes_sent(sandbox_url):
    """The classic v3 mistake: signing one serialisation and sending another."""
    body = jsapi_body("V3T202")
    ts, nonce = str(int(time.time())), "M" * 32
    signed = json.dumps(body, separators=(",", ":")).encode()
    message = f"POST\n/v3/pay/transactions/jsapi\n{ts}\n{nonce}\n".encode() + signed + b"\n"
    signature = base64.b64encode(merchant_private_key().sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    authorization = (
        f'WECHATPAY2-SHA256-RSA2048 mchid="{settings.WECHAT_MCH_ID}",nonce_str="{nonce}",'
        f'signature="{signature}",timestamp="{ts}",serial_no="{keys().merchant_serial}"'
    )
    sent = json.dumps(body).encode()  # the same JSON, other spacing
    response = signed_request(sandbox_url, "POST", "/v3/pay/transactions/jsapi", sent, authorization=authorization)
    assert_wechat_answer(response, 401, "SIGN_ERROR")
    assert not Trade.objects.exists()


def test_every_answer_carries_a_request_id_and_wechats_signature_headers(sandbox_url, v3pay):
    prepay(v3pay, "V3T203")
    for response in (
        signed_request(sandbox_url, "GET", QUERY + settings.WECHAT_MCH_ID),  # 404
        signed_request(sandbox_url, "GET", "/v3/pay/transactions/out-trade-no/V3T203?mchid=" + settings.WECHAT_MCH_ID),
        post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3T203/close", {"mchid": settings.WECHAT_MCH_ID}),
        requests.get(sandbox_url + "v3/certificates", timeout=10),  # no Authorization at all
        signed_request(sandbox_url, "GET", "/v3/pay/transactions/jsapi"),  # wrong method
    ):
        assert re.match(r"^[0-9A-F]{46}-0$", response.headers["Request-ID"])
        assert response.headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
        assert verifies(response.headers, response.content), response.status_code
    assert response.status_code == 405


# --- refunds --------------------------------------------------------------------------------


def refund(client: WeChatPay, out_trade_no: str, out_refund_no: str, amount: int, total: int = 1000, **extra) -> tuple[int, dict]:
    code, text = client.refund(
        out_refund_no=out_refund_no,
        out_trade_no=out_trade_no,
        amount={"refund": amount, "total": total, "currency": "CNY"},
        **extra,
    )
    return code, json.loads(text)


def test_a_refund_is_processing_then_succeeds_and_repeats_answer_the_same_refund(v3pay, sandbox_url, slow_refunds):
    paid_trade(sandbox_url, v3pay, "V3RFD1")
    code, applied = refund(v3pay, "V3RFD1", "V3RFD1-1", 300, reason="用户申请")
    assert code == 200 and applied["status"] == "PROCESSING" and applied["refund_id"]
    assert applied["out_trade_no"] == "V3RFD1" and applied["out_refund_no"] == "V3RFD1-1" and applied["channel"]
    assert applied["amount"]["refund"] == 300 and applied["amount"]["total"] == 1000
    assert applied["amount"]["payer_refund"] == 300 and RFC3339_BEIJING.match(applied["create_time"])
    assert "success_time" not in applied
    assert refund(v3pay, "V3RFD1", "V3RFD1-1", 300)[1]["refund_id"] == applied["refund_id"]
    assert Refund.objects.get().api_version == "v3" and Refund.objects.get().reason == "用户申请"
    assert query(v3pay, "V3RFD1")[1]["trade_state"] == "REFUND"
    code, text = v3pay.query_refund(out_refund_no="V3RFD1-1")
    assert code == 200 and json.loads(text)["status"] == "PROCESSING"
    Refund.objects.update(settle_at=timezone.now())
    queried = json.loads(v3pay.query_refund(out_refund_no="V3RFD1-1")[1])  # settles what is due first
    assert queried["status"] == "SUCCESS" and RFC3339_BEIJING.match(queried["success_time"])
    assert queried["refund_id"] == applied["refund_id"]


def test_refund_errors_use_wechats_codes(v3pay, sandbox_url):
    prepay(v3pay, "V3RFD2")

    def code_of(*args, **kwargs) -> tuple[int, str]:
        status, answer = refund(v3pay, *args, **kwargs)
        return status, answer.get("code", "")

    assert code_of("V3RFD2", "V3RFD2-1", 100) == (403, "TRADE_ERROR")  # not paid
    assert code_of("NOPE02", "V3RFD2-2", 100) == (404, "RESOURCE_NOT_EXISTS")
    paid_trade(sandbox_url, v3pay, "V3RFD3")
    assert code_of("V3RFD3", "V3RFD3-1", 100, total=999) == (400, "PARAM_ERROR")  # not the order's amount
    assert code_of("V3RFD3", "V3RFD3-1", 1001) == (400, "INVALID_REQUEST")  # more than was paid
    assert refund(v3pay, "V3RFD3", "V3RFD3-1", 600)[0] == 200
    code, answer = refund(v3pay, "V3RFD3", "V3RFD3-2", 401)  # 400 left
    assert (code, answer["code"]) == (400, "INVALID_REQUEST")
    code, answer = refund(v3pay, "V3RFD3", "V3RFD3-1", 500)  # the same number, another amount
    assert (code, answer["code"]) == (400, "INVALID_REQUEST")
    paid_trade(sandbox_url, v3pay, "V3RFD4")
    assert code_of("V3RFD4", "V3RFD3-1", 600) == (400, "INVALID_REQUEST")  # a number of another order
    assert Trade.objects.get(out_trade_no="V3RFD3").refunded_fee == 600
    missing = post_json(
        sandbox_url,
        "/v3/refund/domestic/refunds",
        {"out_refund_no": "X1", "amount": {"refund": 1, "total": 1000, "currency": "CNY"}},
    )
    assert "二选一" in assert_wechat_answer(missing, 400, "PARAM_ERROR")["message"]
    unknown = signed_request(sandbox_url, "GET", "/v3/refund/domestic/refunds/NOPE")
    assert_wechat_answer(unknown, 404, "RESOURCE_NOT_EXISTS")


def test_the_51st_refund_of_an_order_is_refused_with_rule_limit(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3RFD5", total=100)
    trade = Trade.objects.get(out_trade_no="V3RFD5")
    Refund.objects.bulk_create(
        Refund(trade=trade, out_refund_no=f"V3RFD5-{n}", refund_id=f"5030{n:024d}", refund_fee=1, state=Refund.SUCCESS)
        for n in range(50)
    )
    Trade.objects.filter(pk=trade.pk).update(refunded_fee=50, state=Trade.REFUND)
    code, answer = refund(v3pay, "V3RFD5", "V3RFD5-50", 1, total=100)
    assert (code, answer["code"]) == (403, "RULE_LIMIT")


def test_an_order_paid_more_than_a_year_ago_cannot_be_refunded(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3RFD6")
    Trade.objects.filter(out_trade_no="V3RFD6").update(time_end=timezone.now() - timedelta(days=366))
    assert refund(v3pay, "V3RFD6", "V3RFD6-1", 1)[1]["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(("end_state", "status"), [("REFUNDCLOSE", "CLOSED"), ("CHANGE", "ABNORMAL")])
def test_refund_outcomes_have_their_v3_names(v3pay, sandbox_url, end_state, status, slow_refunds):
    paid_trade(sandbox_url, v3pay, "V3RFD7")
    Fault.objects.create(out_trade_no="V3RFD7", end_state=end_state)
    refund(v3pay, "V3RFD7", "V3RFD7-1", 1000)
    Refund.objects.update(settle_at=timezone.now())
    queried = json.loads(v3pay.query_refund(out_refund_no="V3RFD7-1")[1])
    assert queried["status"] == status and "success_time" not in queried


def test_refunds_by_transaction_id(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3RFD8")
    transaction_id = Trade.objects.get(out_trade_no="V3RFD8").transaction_id
    code, text = v3pay.refund(
        out_refund_no="V3RFD8-1", transaction_id=transaction_id, amount={"refund": 10, "total": 1000, "currency": "CNY"}
    )
    assert code == 200 and json.loads(text)["out_trade_no"] == "V3RFD8"


# --- keys: public key, platform certificates, migration -------------------------------------


def test_a_public_key_merchant_gets_answers_signed_with_the_public_key_and_no_certificates(v3pay, sandbox_url):
    response = signed_request(sandbox_url, "GET", "/v3/certificates")
    answer = assert_wechat_answer(response, 404, "RESOURCE_NOT_EXISTS")
    assert "微信支付公钥" in answer["message"]
    assert response.headers["Wechatpay-Serial"] == keys().files.pay_public_key_id
    assert prepay(v3pay, "V3KEY1")[0] == 200


def test_a_certificate_merchant_downloads_the_platform_certificate(settings, sandbox_url, tmp_path):
    settings.SANDBOX_V3_KEY_MODE = "certificate"
    client = v3_client(sandbox_url, public_key=False, cert_dir=certificate_dir(tmp_path))
    client._core._update_certificates()  # GET /v3/certificates, decrypted with the APIv3 key
    assert [c.serial_number for c in client._core._certificates] == [int(keys().files.platform_serial, 16)]
    response = signed_request(sandbox_url, "GET", "/v3/certificates")
    data = assert_wechat_answer(response, 200)["data"]
    assert response.headers["Wechatpay-Serial"] == keys().files.platform_serial
    item = data[0]
    assert item["serial_no"] == keys().files.platform_serial
    assert RFC3339_BEIJING.match(item["effective_time"]) and RFC3339_BEIJING.match(item["expire_time"])
    encrypted = item["encrypt_certificate"]
    assert encrypted["algorithm"] == "AEAD_AES_256_GCM" and encrypted["associated_data"] == "certificate"
    assert re.match(r"^[A-Za-z0-9]{12}$", encrypted["nonce"])
    # Answers verify with the certificate (wechatpayv3 raises otherwise).
    assert prepay(client, "V3KEY2")[0] == 200 and query(client, "V3KEY2")[1]["trade_state"] == "NOTPAY"
    # A certificate merchant never gets a public-key signature, even when it asks for one.
    asked = signed_request(sandbox_url, "GET", "/v3/certificates", headers={"Wechatpay-Serial": keys().files.pay_public_key_id})
    assert asked.headers["Wechatpay-Serial"] == keys().files.platform_serial


def test_in_migration_answers_follow_the_wechatpay_serial_the_request_names(settings, sandbox_url, tmp_path):
    settings.SANDBOX_V3_KEY_MODE = "migration"
    by_public_key = v3_client(sandbox_url)  # sends Wechatpay-Serial: PUB_KEY_ID_…
    assert prepay(by_public_key, "V3KEY3")[0] == 200
    by_certificate = v3_client(sandbox_url, public_key=False, cert_dir=certificate_dir(tmp_path))
    assert query(by_certificate, "V3KEY3")[0] == 200
    plain = signed_request(sandbox_url, "GET", "/v3/pay/transactions/out-trade-no/V3KEY3?mchid=" + settings.WECHAT_MCH_ID)
    assert assert_wechat_answer(plain, 200) and plain.headers["Wechatpay-Serial"] == keys().files.platform_serial
    asked = signed_request(
        sandbox_url,
        "GET",
        "/v3/pay/transactions/out-trade-no/V3KEY3?mchid=" + settings.WECHAT_MCH_ID,
        headers={"Wechatpay-Serial": keys().files.pay_public_key_id},
    )
    assert assert_wechat_answer(asked, 200) and asked.headers["Wechatpay-Serial"] == keys().files.pay_public_key_id
    assert assert_wechat_answer(signed_request(sandbox_url, "GET", "/v3/certificates"), 200)["data"]


# --- fault switches -------------------------------------------------------------------------


def test_systemerror_switches_make_the_v3_equivalents_answer_500(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3FLT1")
    refund(v3pay, "V3FLT1", "V3FLT1-1", 1)
    Fault.objects.create(out_trade_no="", systemerror_endpoints="unifiedorder,orderquery,closeorder,refund,refundquery")
    mchid = settings.WECHAT_MCH_ID
    for response in (
        post_json(sandbox_url, "/v3/pay/transactions/jsapi", jsapi_body("V3FLT2")),
        signed_request(sandbox_url, "GET", f"/v3/pay/transactions/out-trade-no/V3FLT1?mchid={mchid}"),
        post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3FLT1/close", {"mchid": mchid}),
        post_json(
            sandbox_url,
            "/v3/refund/domestic/refunds",
            {"out_trade_no": "V3FLT1", "out_refund_no": "V3FLT1-2", "amount": {"refund": 1, "total": 1000, "currency": "CNY"}},
        ),
        signed_request(sandbox_url, "GET", "/v3/refund/domestic/refunds/V3FLT1-1"),
    ):
        assert_wechat_answer(response, 500, "SYSTEM_ERROR")
    assert not Trade.objects.filter(out_trade_no="V3FLT2").exists() and Refund.objects.count() == 1


def test_corrupt_signature_spoils_the_answers_about_that_trade_only(v3pay, sandbox_url):
    prepay(v3pay, "V3FLT3")
    prepay(v3pay, "V3FLT4")
    Fault.objects.create(out_trade_no="V3FLT3", corrupt_signature=True)
    with pytest.raises(Exception, match="failed to verify the signature"):
        query(v3pay, "V3FLT3")
    assert query(v3pay, "V3FLT4")[0] == 200
    closed = post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3FLT3/close", {"mchid": settings.WECHAT_MCH_ID})
    assert closed.status_code == 204 and not verifies(closed.headers, closed.content)
    again = post_json(sandbox_url, "/v3/pay/transactions/out-trade-no/V3FLT3/close", {"mchid": settings.WECHAT_MCH_ID})
    assert again.status_code == 400 and not verifies(again.headers, again.content)  # errors too


def test_report_total_fee_changes_the_amount_a_query_reports(v3pay, sandbox_url):
    paid_trade(sandbox_url, v3pay, "V3FLT5")
    Fault.objects.create(out_trade_no="V3FLT5", report_total_fee=1)
    amount = query(v3pay, "V3FLT5")[1]["amount"]
    assert (amount["total"], amount["payer_total"]) == (1, 1)
    assert Trade.objects.get(out_trade_no="V3FLT5").total_fee == 1000


# --- trade bills, unknown paths, settings ------------------------------------------------------


def test_the_trade_bill_is_listed_then_downloaded_with_a_signed_get(v3pay, sandbox_url):
    import gzip
    import hashlib

    paid_trade(sandbox_url, v3pay, "V3B001", total=1990)
    day = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(480)).date().isoformat()
    code, text = v3pay.trade_bill(bill_date=day)
    assert code == 200
    listed = json.loads(text)
    assert listed["hash_type"] == "SHA1" and listed["download_url"].startswith(sandbox_url + "v3/billdownload/file?token=")
    code, data = v3pay.download_bill(listed["download_url"])  # wechatpayv3 signs the path after its base URL
    assert code == 200
    bill = gzip.decompress(data)
    assert hashlib.sha1(bill).hexdigest() == listed["hash_value"]
    assert "`V3B001" in bill.decode() and "`19.90" in bill.decode()
    unsigned = requests.get(listed["download_url"], timeout=10)
    assert_wechat_answer(unsigned, 401, "SIGN_ERROR")


def test_a_day_without_trades_has_no_bill_and_a_bad_date_is_a_param_error(v3pay):
    code, text = v3pay.trade_bill(bill_date="2020-01-01")
    assert (code, json.loads(text)["code"]) == (400, "NO_STATEMENT_EXIST")
    code, text = v3pay.trade_bill(bill_date="20200101")
    assert (code, json.loads(text)["code"]) == (400, "PARAM_ERROR")


def test_an_old_download_url_is_refused(v3pay, sandbox_url, time_machine):
    paid_trade(sandbox_url, v3pay, "V3B002")
    day = timezone.localtime(timezone.now(), timezone.get_fixed_timezone(480)).date().isoformat()
    url = json.loads(v3pay.trade_bill(bill_date=day)[1])["download_url"]
    time_machine.move_to(timezone.now() + timedelta(seconds=31), tick=True)
    response = signed_request(sandbox_url, "GET", url[len(sandbox_url.rstrip("/")) :])
    assert_wechat_answer(response, 400, "INVALID_REQUEST")


def test_a_v3_path_the_sandbox_does_not_serve_is_a_signed_json_404(sandbox_url):
    response = signed_request(sandbox_url, "GET", "/v3/merchant/fund/balance/BASIC")
    assert_wechat_answer(response, 404, "NOT_FOUND")


def test_an_unknown_key_mode_fails_the_system_check(settings):
    from devtools.wechat_sandbox.checks import check_v3_key_mode

    assert check_v3_key_mode() == []
    settings.SANDBOX_V3_KEY_MODE = "both"
    assert [error.id for error in check_v3_key_mode()] == ["sandbox.E001"]

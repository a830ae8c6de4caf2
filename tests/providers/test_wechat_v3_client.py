"""wxproto/v3.py against a faked WeChat (responses).

WeChat's side (its signatures, encrypted certificates and notifies) is built here with
`cryptography` directly, never with the client's own helpers, so a mistake in the client
cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
import responses
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from wxproto import v3 as v3

MCHID = "1900000001"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD00000001"
PUB_ID = "PUB_KEY_ID_0119000000012025010100000000000001"
APIV3_KEY = "0123456789abcdefghijklmnopqrstuv"
BASE = "https://api.wechat.test/"
ORDER_PATH = "/v3/pay/transactions/out-trade-no/R20250101000001"


# -- WeChat's side, written independently of the client -------------------------------------------


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def wechat_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sha256_rsa(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_headers(
    key,
    body: bytes,
    serial: str = PUB_ID,
    ts: int | None = None,
    nonce: str = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    signature: str | None = None,
) -> dict[str, str]:
    """The headers WeChat puts on an answer or notify: its signature over TS\\nNONCE\\nBODY\\n."""
    ts = int(time.time()) if ts is None else ts
    return {
        "Wechatpay-Timestamp": str(ts),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": signature or sha256_rsa(key, f"{ts}\n{nonce}\n".encode() + body + b"\n"),
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Request-ID": "08F78BB5AF0610D302A0E8D5C30C-0",
    }


def encrypted(plaintext: bytes, key: str = APIV3_KEY, nonce: str = "fdasflkja484", aad: str = "transaction") -> dict:
    ciphertext = AESGCM(key.encode()).encrypt(nonce.encode(), plaintext, aad.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": aad,
        "nonce": nonce,
        "original_type": "transaction",
    }


def self_signed(key: rsa.RSAPrivateKey, serial: int, not_after: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_after - timedelta(days=5 * 365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def certificate_entry(certificate: x509.Certificate, key: str = APIV3_KEY) -> dict:
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    return {
        "serial_no": format(certificate.serial_number, "X"),
        "effective_time": "2020-01-01T00:00:00+08:00",
        "expire_time": certificate.not_valid_after_utc.isoformat(),
        "encrypt_certificate": encrypted(pem, key=key, aad="certificate"),
    }


def parse_authorization(value: str) -> dict[str, str]:
    schema, _, params = value.partition(" ")
    assert schema == "WECHATPAY2-SHA256-RSA2048"
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def assert_signed_by_merchant(request, merchant_key, signed_path: str) -> None:
    """The server's check: the merchant's signature over METHOD\\nPATH\\nTS\\nNONCE\\nBODY\\n, body as received."""
    auth = parse_authorization(request.headers["Authorization"])
    assert auth["mchid"] == MCHID and auth["serial_no"] == MERCHANT_SERIAL
    assert re.fullmatch(r"[0-9A-Z]{32}", auth["nonce_str"])
    assert abs(int(auth["timestamp"]) - time.time()) < 5
    body = request.body or b""
    message = f"{request.method}\n{signed_path}\n{auth['timestamp']}\n{auth['nonce_str']}\n".encode() + body + b"\n"
    merchant_key.public_key().verify(base64.b64decode(auth["signature"]), message, padding.PKCS1v15(), hashes.SHA256())


@pytest.fixture
def wechat():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def make_client(merchant_key, wechat_key, base_url: str = BASE, public_key_id: str = PUB_ID, keys=None) -> v3.Client:
    return v3.Client(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=merchant_key,
        apiv3_key=APIV3_KEY,
        base_url=base_url,
        keys=keys or v3.KeyStore(wechat_key.public_key(), PUB_ID),
        public_key_id=public_key_id,
    )


@pytest.fixture
def client(merchant_key, wechat_key) -> v3.Client:
    return make_client(merchant_key, wechat_key)


def answer(wechat, key, method: str, path: str, status: int = 200, payload=None, base: str = BASE, **sign) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    wechat.add(method, base.rstrip("/") + path, body=body, status=status, headers=signed_headers(key, body, **sign))
    return body


# -- signing requests --------------------------------------------------------------------------------


def test_it_signs_the_exact_body_bytes_it_sends(wechat, client, merchant_key, wechat_key):
    prepay = {"prepay_id": "wx201410272009395522657a690389285100"}
    answer(wechat, wechat_key, "POST", "/v3/pay/transactions/jsapi", payload=prepay)
    order = {
        "appid": "wxd678efh567hg6787",
        "mchid": MCHID,
        "description": "余额充值 ¥19.90",
        "out_trade_no": "R1",
        "amount": {"total": 1990, "currency": "CNY"},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    }

    status, data = client.request("POST", "/v3/pay/transactions/jsapi", body=order)

    assert (status, data) == (200, prepay)
    sent = wechat.calls[0].request
    assert sent.body == json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode()
    assert "余额充值".encode() in sent.body
    assert_signed_by_merchant(sent, merchant_key, "/v3/pay/transactions/jsapi")
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["User-Agent"] == "wxrecharge"
    assert sent.headers["Wechatpay-Serial"] == PUB_ID
    assert wechat.calls[0].request.req_kwargs["timeout"] == 10.0


def test_it_signs_the_query_in_the_order_sent(wechat, client, merchant_key, wechat_key):
    answer(wechat, wechat_key, "GET", "/v3/bill/tradebill", payload={"download_url": "x"})

    client.request("GET", "/v3/bill/tradebill", query={"bill_date": "2025-01-01", "bill_type": "ALL", "tar_type": "GZIP"})

    sent = wechat.calls[0].request
    assert sent.path_url == "/v3/bill/tradebill?bill_date=2025-01-01&bill_type=ALL&tar_type=GZIP"
    assert sent.body is None and "Content-Type" not in sent.headers
    assert_signed_by_merchant(sent, merchant_key, sent.path_url)


def test_it_signs_the_path_after_the_base_urls_prefix(wechat, merchant_key, wechat_key):
    base = "http://sandbox.test/sandbox/"
    client = make_client(merchant_key, wechat_key, base_url=base)
    answer(wechat, wechat_key, "GET", ORDER_PATH, payload={"trade_state": "NOTPAY"}, base=base)

    client.request("GET", ORDER_PATH, query={"mchid": MCHID})

    sent = wechat.calls[0].request
    assert urlsplit(sent.url).path == "/sandbox" + ORDER_PATH
    assert_signed_by_merchant(sent, merchant_key, f"{ORDER_PATH}?mchid={MCHID}")


def test_it_signs_the_path_as_quoted_on_the_wire(wechat, client, merchant_key, wechat_key):
    path = "/v3/pay/transactions/out-trade-no/R1|2*3"  # out_trade_no allows |, which requests sends as %7C
    wechat.add(
        "GET",
        BASE.rstrip("/") + "/v3/pay/transactions/out-trade-no/R1%7C2*3",
        body=b"{}",
        headers=signed_headers(wechat_key, b"{}"),
    )

    client.request("GET", path)

    sent = wechat.calls[0].request
    assert sent.path_url == "/v3/pay/transactions/out-trade-no/R1%7C2*3"
    assert_signed_by_merchant(sent, merchant_key, sent.path_url)


def test_it_sends_no_wechatpay_serial_without_a_public_key_id(wechat, merchant_key, wechat_key):
    client = make_client(merchant_key, wechat_key, public_key_id="")
    answer(wechat, wechat_key, "GET", ORDER_PATH, payload={})

    client.request("GET", ORDER_PATH)

    assert "Wechatpay-Serial" not in wechat.calls[0].request.headers


def test_it_logs_method_path_and_time_but_no_body_or_query(wechat, client, wechat_key, caplog):
    answer(wechat, wechat_key, "POST", "/v3/pay/transactions/jsapi", payload={"prepay_id": "wx1"})

    with caplog.at_level(logging.INFO, logger="wxproto.v3"):
        client.request("POST", "/v3/pay/transactions/jsapi", query={"token": "s3cret"}, body={"openid": "oSecret"})

    assert re.search(r"POST /v3/pay/transactions/jsapi 200 \d+ms", caplog.text)
    assert "oSecret" not in caplog.text and "s3cret" not in caplog.text and "wx1" not in caplog.text


# -- verifying answers ---------------------------------------------------------------------------------


def test_it_returns_a_correctly_signed_answer(wechat, client, wechat_key):
    paid = {"trade_state": "SUCCESS", "amount": {"total": 1990}}
    answer(wechat, wechat_key, "GET", ORDER_PATH, payload=paid)

    assert client.request("GET", ORDER_PATH, query={"mchid": MCHID}) == (200, paid)


def test_it_returns_none_for_a_signed_204(wechat, client, wechat_key):
    answer(wechat, wechat_key, "POST", ORDER_PATH + "/close", status=204)

    assert client.request("POST", ORDER_PATH + "/close", body={"mchid": MCHID}) == (204, None)


def tampered(wechat, wechat_key, merchant_key):
    body = b'{"trade_state":"SUCCESS"}'
    headers = signed_headers(wechat_key, b'{"trade_state":"NOTPAY"}')
    wechat.add("GET", BASE.rstrip("/") + ORDER_PATH, body=body, headers=headers)


def signed_by(wechat, wechat_key, merchant_key, **sign):
    answer(wechat, merchant_key if sign.pop("wrong_key", False) else wechat_key, "GET", ORDER_PATH, payload={"a": 1}, **sign)


def without(header):
    def serve(wechat, wechat_key, merchant_key):
        body = b'{"a":1}'
        headers = signed_headers(wechat_key, body)
        del headers[header]
        wechat.add("GET", BASE.rstrip("/") + ORDER_PATH, body=body, headers=headers)

    return serve


def unsigned(wechat, wechat_key, merchant_key):
    wechat.add("GET", BASE.rstrip("/") + ORDER_PATH, json={"trade_state": "SUCCESS"})


BAD_ANSWERS = {
    "tampered body": tampered,
    "wrong key": lambda w, wk, mk: signed_by(w, wk, mk, wrong_key=True),
    "unknown serial": lambda w, wk, mk: signed_by(w, wk, mk, serial="PUB_KEY_ID_0119000000012025010100000000000002"),
    "6 minutes old": lambda w, wk, mk: signed_by(w, wk, mk, ts=int(time.time()) - 360),
    "6 minutes ahead": lambda w, wk, mk: signed_by(w, wk, mk, ts=int(time.time()) + 360),
    "probe": lambda w, wk, mk: signed_by(w, wk, mk, signature="WECHATPAY/SIGNTEST/" + "A" * 340),
    "no signature headers": unsigned,
    **{f"no {h}": without(h) for h in ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial")},
}


@pytest.mark.parametrize("serve", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_it_refuses_an_answer_whose_signature_cannot_be_trusted(wechat, client, wechat_key, merchant_key, serve):
    serve(wechat, wechat_key, merchant_key)

    with pytest.raises(v3.V3Error) as caught:
        client.request("GET", ORDER_PATH)

    assert caught.value.code == "ANSWER_SIGNATURE" and caught.value.retryable and caught.value.status == 200
    assert isinstance(caught.value.__cause__, v3.SignatureError)


def test_a_probe_answer_is_flagged_as_a_probe(wechat, client, wechat_key, merchant_key):
    signed_by(wechat, wechat_key, merchant_key, signature="WECHATPAY/SIGNTEST/" + "A" * 340)

    with pytest.raises(v3.V3Error) as caught:
        client.request("GET", ORDER_PATH)

    assert caught.value.__cause__.probe is True


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'"text"'])
def test_a_signed_answer_that_is_not_a_json_object_is_a_bad_answer(wechat, client, wechat_key, body):
    wechat.add("GET", BASE.rstrip("/") + ORDER_PATH, body=body, headers=signed_headers(wechat_key, body))

    with pytest.raises(v3.V3Error) as caught:
        client.request("GET", ORDER_PATH)

    assert caught.value.code == "BAD_ANSWER" and caught.value.retryable


# -- errors -------------------------------------------------------------------------------------------------


def test_an_unknown_order_raises_with_wechats_code_and_request_id(wechat, client):
    wechat.add(
        "GET",
        BASE.rstrip("/") + ORDER_PATH,
        status=404,
        json={"code": "ORDER_NOT_EXIST", "message": "订单不存在"},
        headers={"Request-ID": "req-404"},
    )

    with pytest.raises(v3.V3Error) as caught:
        client.request("GET", ORDER_PATH, query={"mchid": MCHID})

    error = caught.value
    assert (error.code, error.status, error.request_id, error.retryable) == ("ORDER_NOT_EXIST", 404, "req-404", False)
    assert "订单不存在" in str(error)


@pytest.mark.parametrize(
    ("status", "payload", "code", "retryable"),
    [
        (500, {"code": "SYSTEM_ERROR", "message": "系统错误"}, "SYSTEM_ERROR", True),
        (429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}, "FREQUENCY_LIMITED", True),
        (401, {"code": "SIGN_ERROR", "message": "签名错误"}, "SIGN_ERROR", False),
        (403, {"code": "OUT_TRADE_NO_USED", "message": "商户订单号重复"}, "OUT_TRADE_NO_USED", False),
        (502, "<html>Bad Gateway</html>", "HTTP_502", True),
        (302, "", "HTTP_302", False),
    ],
)
def test_error_answers_carry_a_code_and_whether_to_retry(wechat, client, status, payload, code, retryable):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    wechat.add(
        "POST",
        BASE.rstrip("/") + "/v3/refund/domestic/refunds",
        status=status,
        body=body,
        headers={"Location": "https://elsewhere.test/"} if status == 302 else {},
    )

    with pytest.raises(v3.V3Error) as caught:
        client.request("POST", "/v3/refund/domestic/refunds", body={"out_trade_no": "R1"})

    assert (caught.value.code, caught.value.status, caught.value.retryable) == (code, status, retryable)
    assert len(wechat.calls) == 1  # a redirect is not followed


@pytest.mark.parametrize("exc", [requests.ConnectionError("refused"), requests.Timeout("slow")])
def test_transport_failures_are_retryable_network_errors(wechat, client, exc):
    wechat.add("GET", BASE.rstrip("/") + ORDER_PATH, body=exc)

    with pytest.raises(v3.V3Error) as caught:
        client.request("GET", ORDER_PATH)

    assert (caught.value.code, caught.value.status, caught.value.retryable) == ("NETWORK", None, True)


def test_v3_error_retryable_defaults():
    assert v3.V3Error("x", "PARAM_ERROR", 400).retryable is False
    assert v3.V3Error("x", "USER_PAYING", 202).retryable is True
    assert v3.V3Error("x", "HTTP_503", 503).retryable is True
    assert v3.V3Error("x", "SYSTEM_ERROR").retryable is True
    assert v3.V3Error("x", "SYSTEM_ERROR", 500, retryable=False).retryable is False


# -- download ----------------------------------------------------------------------------------------------


def test_download_signs_the_url_relative_to_the_base_and_does_not_check_the_answer(wechat, merchant_key, wechat_key):
    base = "http://sandbox.test/sandbox/"
    client = make_client(merchant_key, wechat_key, base_url=base)
    wechat.add("GET", "http://sandbox.test/sandbox/v3/billdownload/file", body=b"\x1f\x8bgzip")
    wechat.add("GET", "https://bills.test/v3/billdownload/file", body=b"other")

    assert client.download("http://sandbox.test/sandbox/v3/billdownload/file?token=T1") == b"\x1f\x8bgzip"
    assert client.download("https://bills.test/v3/billdownload/file?token=T2") == b"other"

    assert_signed_by_merchant(wechat.calls[0].request, merchant_key, "/v3/billdownload/file?token=T1")
    assert_signed_by_merchant(wechat.calls[1].request, merchant_key, "/v3/billdownload/file?token=T2")


def test_download_errors_raise(wechat, client):
    wechat.add("GET", "https://api.wechat.test/v3/billdownload/file", status=400, json={"code": "INVALID_REQUEST"})

    with pytest.raises(v3.V3Error) as caught:
        client.download("https://api.wechat.test/v3/billdownload/file?token=T")

    assert caught.value.code == "INVALID_REQUEST"


# -- keys --------------------------------------------------------------------------------------------------


class Fetcher:
    def __init__(self, keys):
        self.keys, self.calls = keys, 0

    def __call__(self):
        self.calls += 1
        return self.keys


def test_an_unknown_certificate_serial_fetches_at_most_once_per_window(wechat_key):
    public_key = wechat_key.public_key()
    fetch = Fetcher({"5157f09efdc096de15ebe81a47057a7232f1b8e1": public_key})
    store = v3.KeyStore(fetch=fetch, refetch_seconds=600)
    clock = [1000.0]
    store._clock = lambda: clock[0]

    assert store.get("0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1") is public_key
    assert store.get("5157F09EFDC096DE15EBE81A47057A7232F1B8E1") is public_key
    for _ in range(50):
        assert store.get("AAAA") is None
    assert fetch.calls == 1

    clock[0] += 600
    assert store.get("AAAA") is None
    assert fetch.calls == 2


def test_an_unknown_public_key_id_never_fetches(wechat_key):
    fetch = Fetcher({})
    public_key = wechat_key.public_key()
    store = v3.KeyStore(public_key, PUB_ID, fetch=fetch)

    assert store.get(PUB_ID) is public_key
    assert store.get("PUB_KEY_ID_0119000000012025010100000000000099") is None
    assert fetch.calls == 0


def test_a_failing_fetch_is_logged_and_counts_as_the_windows_fetch(caplog):
    calls = []

    def fetch():
        calls.append(1)
        raise v3.V3Error("GET /v3/certificates: HTTP 404 RESOURCE_NOT_EXISTS", "RESOURCE_NOT_EXISTS", 404)

    store = v3.KeyStore(fetch=fetch)

    assert store.get("AAAA") is None and store.get("BBBB") is None
    assert len(calls) == 1
    assert "certificate fetch for serial AAAA failed" in caplog.text


def test_a_public_key_needs_its_id(wechat_key):
    with pytest.raises(ValueError, match="PUB_KEY_ID_"):
        v3.KeyStore(wechat_key.public_key())


def test_verify_signed_accepts_any_header_case_and_returns_the_serial(wechat_key):
    body = b'{"a":1}'
    headers = {k.lower(): v for k, v in signed_headers(wechat_key, body, ts=1_700_000_000).items()}
    store = v3.KeyStore(wechat_key.public_key(), PUB_ID)

    assert v3.verify_signed(store, headers, body, now=1_700_000_000 + 300) == PUB_ID
    assert v3.verify_signed(store, requests.structures.CaseInsensitiveDict(headers), body, now=1_700_000_000 - 300) == PUB_ID
    headers.pop("wechatpay-signature-type")  # not every answer carries it
    assert v3.verify_signed(store, headers, body, now=1_700_000_000) == PUB_ID


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Wechatpay-Timestamp": "17e8"}, "not an integer"),
        ({"Wechatpay-Timestamp": "1700000301"}, "more than 300s"),
        ({"Wechatpay-Signature-Type": "WECHATPAY2-SM2-WITH-SM3"}, "Signature-Type"),
        ({"Wechatpay-Signature": "%%% not base64 %%%"}, "does not verify"),
        ({"Wechatpay-Nonce": ""}, "missing Wechatpay-Nonce"),
    ],
)
def test_verify_signed_refuses(wechat_key, change, message):
    body = b"{}"
    headers = {**signed_headers(wechat_key, body, ts=1_700_000_000), **change}

    with pytest.raises(v3.SignatureError, match=message) as caught:
        v3.verify_signed(v3.KeyStore(wechat_key.public_key(), PUB_ID), headers, body, now=1_700_000_000)

    assert caught.value.probe is False


# -- certificates ----------------------------------------------------------------------------------------


def test_fetch_certificates_returns_current_certificates_by_serial(wechat, client, wechat_key, merchant_key):
    now = datetime.now(UTC)
    current = self_signed(wechat_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1, now + timedelta(days=1800))
    expired = self_signed(merchant_key, 0x2C2A1D3A2E5D4F8B1C2D3E4F5A6B7C8D9E0F1A2B, now - timedelta(days=1))
    serial = format(current.serial_number, "X")
    # WeChat signs the certificate list with the certificate it carries (the bootstrap case: the serial is new to us)
    answer(
        wechat,
        wechat_key,
        "GET",
        "/v3/certificates",
        serial=serial,
        payload={"data": [certificate_entry(expired), certificate_entry(current)]},
    )

    keys = client.fetch_certificates()

    assert list(keys) == [serial]
    assert keys[serial].public_numbers() == wechat_key.public_key().public_numbers()
    assert_signed_by_merchant(wechat.calls[0].request, merchant_key, "/v3/certificates")


def test_fetch_certificates_refuses_a_list_not_signed_by_its_certificates(wechat, client, wechat_key, merchant_key):
    current = self_signed(wechat_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1, datetime.now(UTC) + timedelta(days=1))
    answer(
        wechat,
        merchant_key,
        "GET",
        "/v3/certificates",
        serial=format(current.serial_number, "X"),
        payload={"data": [certificate_entry(current)]},
    )

    with pytest.raises(v3.V3Error) as caught:
        client.fetch_certificates()

    assert caught.value.code == "ANSWER_SIGNATURE"


def test_fetch_certificates_refuses_certificates_under_another_apiv3_key(wechat, client, wechat_key):
    current = self_signed(wechat_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1, datetime.now(UTC) + timedelta(days=1))
    answer(
        wechat,
        wechat_key,
        "GET",
        "/v3/certificates",
        serial=format(current.serial_number, "X"),
        payload={"data": [certificate_entry(current, key="X" * 32)]},
    )

    with pytest.raises(v3.DecryptError):
        client.fetch_certificates()


def test_a_certificate_merchant_fetches_certificates_on_an_unknown_serial(wechat, merchant_key, wechat_key):
    current = self_signed(wechat_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1, datetime.now(UTC) + timedelta(days=1800))
    serial = format(current.serial_number, "X")
    keys = v3.KeyStore(fetch=lambda: client.fetch_certificates())
    client = make_client(merchant_key, wechat_key, public_key_id="", keys=keys)
    answer(wechat, wechat_key, "GET", "/v3/certificates", serial=serial, payload={"data": [certificate_entry(current)]})
    answer(wechat, wechat_key, "GET", ORDER_PATH, serial=serial.lower(), payload={"trade_state": "SUCCESS"})

    assert client.request("GET", ORDER_PATH) == (200, {"trade_state": "SUCCESS"})
    assert client.request("GET", ORDER_PATH) == (200, {"trade_state": "SUCCESS"})

    assert [urlsplit(c.request.url).path for c in wechat.calls] == [ORDER_PATH, "/v3/certificates", ORDER_PATH]


# -- notifies ------------------------------------------------------------------------------------------------


TRANSACTION = {
    "mchid": MCHID,
    "out_trade_no": "R20250101000001",
    "transaction_id": "4200000000202501010000000001",
    "trade_state": "SUCCESS",
    "amount": {"total": 1990, "payer_total": 1990, "currency": "CNY"},
}


def notify(wechat_key, resource=None, **envelope) -> tuple[dict, bytes]:
    payload = {
        "id": "EV-2018022511223320873",
        "create_time": "2025-01-01T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": encrypted(json.dumps(TRANSACTION).encode()) if resource is None else resource,
        **envelope,
    }
    body = json.dumps(payload, ensure_ascii=False).encode()
    return signed_headers(wechat_key, body), body


def test_parse_notify_verifies_and_decrypts(client, wechat_key):
    headers, body = notify(wechat_key)

    envelope, resource = client.parse_notify(headers, body)

    assert envelope["event_type"] == "TRANSACTION.SUCCESS" and resource == TRANSACTION


def test_parse_notify_refuses_a_tampered_body_before_decrypting(client, wechat_key):
    headers, body = notify(wechat_key)

    with pytest.raises(v3.SignatureError):
        client.parse_notify(headers, body.replace("支付成功".encode(), "支付失败".encode()))


def test_parse_notify_flags_a_probe(client, wechat_key):
    headers, body = notify(wechat_key)
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]

    with pytest.raises(v3.SignatureError) as caught:
        client.parse_notify(headers, body)

    assert caught.value.probe is True


def flipped_tag(resource: dict) -> dict:
    raw = bytearray(base64.b64decode(resource["ciphertext"]))
    raw[-1] ^= 1
    return {**resource, "ciphertext": base64.b64encode(bytes(raw)).decode()}


UNDECRYPTABLE = {
    "tag flipped": flipped_tag(encrypted(b'{"a":1}')),
    "another APIv3 key": encrypted(b'{"a":1}', key="abcdefghijklmnopqrstuvwxyz012345"),
    "another AAD": {**encrypted(b'{"a":1}'), "associated_data": "refund"},
    "algorithm other": {**encrypted(b'{"a":1}'), "algorithm": "AEAD_SM4_GCM"},
    "no ciphertext": {k: v for k, v in encrypted(b'{"a":1}').items() if k != "ciphertext"},
    "no nonce": {k: v for k, v in encrypted(b'{"a":1}').items() if k != "nonce"},
    "ciphertext not base64": {**encrypted(b'{"a":1}'), "ciphertext": "%%%"},
    "plaintext an array": encrypted(b"[1]"),
    "plaintext not JSON": encrypted(b"SUCCESS"),
}


@pytest.mark.parametrize("resource", UNDECRYPTABLE.values(), ids=UNDECRYPTABLE.keys())
def test_parse_notify_refuses_a_resource_that_does_not_decrypt(client, wechat_key, resource):
    headers, body = notify(wechat_key, resource=resource)

    with pytest.raises(v3.DecryptError):
        client.parse_notify(headers, body)


def test_decrypt_resource_needs_a_32_byte_apiv3_key(merchant_key, wechat_key):
    client = v3.Client(
        mchid=MCHID,
        serial_no=MERCHANT_SERIAL,
        private_key=merchant_key,
        apiv3_key="short",
        base_url=BASE,
        keys=v3.KeyStore(wechat_key.public_key(), PUB_ID),
    )

    with pytest.raises(v3.DecryptError, match="32 bytes"):
        client.decrypt_resource(encrypted(b"{}"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b'"encrypt-resource"', "not a JSON object"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (json.dumps({"resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS"}).encode(), "no resource"),
        (
            json.dumps({"resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "resource": "x"}).encode(),
            "no resource",
        ),
        (json.dumps({"resource_type": "plain", "event_type": "X", "resource": {}}).encode(), "resource_type"),
        (json.dumps({"resource_type": "encrypt-resource", "resource": {}}).encode(), "event_type"),
    ],
)
def test_parse_notify_refuses_a_malformed_envelope(client, wechat_key, body, message):
    with pytest.raises(ValueError, match=message) as caught:
        client.parse_notify(signed_headers(wechat_key, body), body)

    assert not isinstance(caught.value, v3.SignatureError | v3.DecryptError)


# -- primitives ---------------------------------------------------------------------------------------------


def test_pay_sign_verifies_over_the_four_lines(merchant_key):
    signature = v3.pay_sign(
        merchant_key,
        "wxd678efh567hg6787",
        "1414561699",
        "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "prepay_id=wx201410272009395522657a690389285100",
    )

    message = (
        b"wxd678efh567hg6787\n1414561699\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\nprepay_id=wx201410272009395522657a690389285100\n"
    )
    merchant_key.public_key().verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        merchant_key.public_key().verify(base64.b64decode(signature), message.rstrip(b"\n"), padding.PKCS1v15(), hashes.SHA256())


def test_authorization_uses_the_given_timestamp_and_nonce(merchant_key):
    value = v3.authorization(MCHID, MERCHANT_SERIAL, merchant_key, "GET", "/v3/certificates", b"", 1554208460, "593BEC0C")

    auth = parse_authorization(value)
    assert (auth["timestamp"], auth["nonce_str"]) == ("1554208460", "593BEC0C")
    merchant_key.public_key().verify(
        base64.b64decode(auth["signature"]),
        b"GET\n/v3/certificates\n1554208460\n593BEC0C\n\n",
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_load_private_key_reads_pkcs8_and_pkcs1(merchant_key, fmt):
    pem = merchant_key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())

    assert v3.load_private_key(pem).private_numbers() == merchant_key.private_numbers()


def test_load_public_key_reads_a_public_key_or_a_certificate(wechat_key):
    spki = wechat_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    cert = self_signed(wechat_key, 1, datetime.now(UTC) + timedelta(days=1)).public_bytes(serialization.Encoding.PEM)

    assert v3.load_public_key(spki).public_numbers() == wechat_key.public_key().public_numbers()
    assert v3.load_public_key(cert).public_numbers() == wechat_key.public_key().public_numbers()


def test_loading_anything_else_is_a_clear_value_error():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ec_pub = ec_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    for load, pem, message in [
        (v3.load_private_key, b"garbage", "PEM private key"),
        (v3.load_private_key, ec_pem, "RSA"),
        (v3.load_public_key, b"garbage", "PEM public key"),
        (v3.load_public_key, ec_pub, "RSA"),
    ]:
        with pytest.raises(ValueError, match=message):
            load(pem)


def test_rsa_verify_never_raises_on_bad_base64(wechat_key):
    assert v3.rsa_verify(wechat_key.public_key(), b"m", "not base64!") is False
    assert v3.rsa_verify(wechat_key.public_key(), b"m", base64.b64encode(b"short").decode()) is False

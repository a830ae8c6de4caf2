"""POST /payments/wechat/v3/notify/ and /v3/refund-notify/: WeChat Pay API v3 notifies.

WeChat is played here by a key pair this test makes itself (the site is configured with
its public half as the 微信支付公钥), and each notify is built and signed by the few lines
below, not by the site's own client: what the site accepts is what WeChat's rules say.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from django.db import DatabaseError
from django.utils import timezone

from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import notifies
from payments.models import Incident, Notification
from tests.factories import make_order, make_user

URL = "/payments/wechat/v3/notify/"
REFUND_URL = "/payments/wechat/v3/refund-notify/"
APIV3_KEY = "0123456789abcdefghijABCDEFGHIJ12"
PUB_KEY_ID = "PUB_KEY_ID_0112345678901234567890123456789012"


@pytest.fixture(scope="module")
def wechat_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def v3_site(settings, tmp_path, wechat_key):
    """The site as a v3 merchant whose 微信支付公钥 is the test's own key."""
    pem = tmp_path / "pub_key.pem"
    pem.write_bytes(
        wechat_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    settings.WECHAT_PAY_API = "v3"
    settings.WECHAT_APIV3_KEY = APIV3_KEY
    settings.WECHAT_PAY_PUBLIC_KEY = str(pem)
    settings.WECHAT_PAY_PUBLIC_KEY_ID = PUB_KEY_ID
    return settings


@pytest.fixture
def order(db, v3_site):
    return make_order(make_user("payer", openid="oPayer"), amount=1990)


def encrypt(plain: dict | list, key: str = APIV3_KEY, associated_data: str = "transaction") -> dict:
    nonce = secrets.token_hex(6)  # 12 ASCII characters, as WeChat sends
    ciphertext = AESGCM(key.encode()).encrypt(
        nonce.encode(), json.dumps(plain, ensure_ascii=False).encode(), associated_data.encode()
    )
    return {
        "original_type": associated_data,
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def transaction(order, **overrides) -> dict:
    from django.conf import settings

    fields = {
        "appid": settings.WECHAT_APPID,
        "mchid": settings.WECHAT_MCH_ID,
        "out_trade_no": order.out_trade_no,
        "transaction_id": "4200000000202611240000000001",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-24T10:34:56+08:00",
        "payer": {"openid": "oPayer"},
        "amount": {"total": order.amount, "payer_total": order.amount, "currency": "CNY", "payer_currency": "CNY"},
    }
    fields.update(overrides)
    return fields


def envelope(resource: dict, event_type: str = "TRANSACTION.SUCCESS") -> bytes:
    return json.dumps(
        {
            "id": "EV-" + secrets.token_hex(8),
            "create_time": "2026-11-24T10:34:57+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": resource,
        },
        ensure_ascii=False,
    ).encode()


def sign(body: bytes, key, serial: str = PUB_KEY_ID, timestamp: int | None = None, signature: str | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16)
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    if signature is None:
        signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {
        "HTTP_WECHATPAY_TIMESTAMP": str(timestamp),
        "HTTP_WECHATPAY_NONCE": nonce,
        "HTTP_WECHATPAY_SIGNATURE": signature,
        "HTTP_WECHATPAY_SERIAL": serial,
        "HTTP_WECHATPAY_SIGNATURE_TYPE": "WECHATPAY2-SHA256-RSA2048",
        "HTTP_REQUEST_ID": "08F0-test",
    }


def post(client, body: bytes, headers: dict, url: str = URL):
    return client.generic("POST", url, body, content_type="application/json", **headers)


def assert_not_credited(order):
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and order.transaction_id is None
    assert order.user.balance == 0 and not LedgerEntry.objects.exists()


def asks_again(response) -> bool:
    """WeChat resends a notify answered with 4xx/5xx (the body says FAIL)."""
    if response.status_code in (200, 204):
        return False
    assert 400 <= response.status_code < 500, "bad input must never be a 500"
    assert response.json()["code"] == "FAIL"
    return True


def test_a_verified_payment_notify_credits_once_and_answers_204(client, order, wechat_key, v3_site):
    body = envelope(encrypt(transaction(order)))
    response = post(client, body, sign(body, wechat_key))
    assert response.status_code == 204 and response.content == b""
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id == "4200000000202611240000000001"
    assert order.paid_at == datetime(2026, 11, 24, 2, 34, 56, tzinfo=UTC)
    assert order.user.balance == 1990 and LedgerEntry.objects.count() == 1
    log = Notification.objects.get()
    assert (log.api, log.kind, log.outcome, log.signature_valid) == ("v3", "payment", "applied", True)
    assert log.headers["Wechatpay-Serial"] == PUB_KEY_ID and log.headers["Request-ID"] == "08F0-test"
    assert APIV3_KEY not in log.body_text + log.detail + json.dumps(log.headers)

    # WeChat sends it again (our 204 was lost): acknowledged, nothing moves twice.
    again = post(client, body, sign(body, wechat_key))
    assert again.status_code == 204
    order.user.refresh_from_db()
    assert order.user.balance == 1990 and LedgerEntry.objects.count() == 1
    assert Notification.objects.filter(outcome="duplicate").count() == 1


@pytest.mark.parametrize(
    "fault",
    [
        "tampered body",
        "tampered signature",
        "unknown serial",
        "probe",
        "6 minutes old",
        "6 minutes ahead",
        "no signature headers",
        "another key",
    ],
)
def test_a_notify_whose_signature_cannot_be_trusted_is_refused_and_asked_again(client, order, wechat_key, fault):
    body = envelope(encrypt(transaction(order)))
    headers = sign(body, wechat_key)
    if fault == "tampered body":
        body = body.replace(b'"summary"', b'"Summary"')
    elif fault == "tampered signature":
        signature = headers["HTTP_WECHATPAY_SIGNATURE"]
        headers["HTTP_WECHATPAY_SIGNATURE"] = ("B" if signature[0] == "A" else "A") + signature[1:]
    elif fault == "unknown serial":
        headers = sign(body, wechat_key, serial="PUB_KEY_ID_0199999999999999999999999999999999")
    elif fault == "probe":
        headers["HTTP_WECHATPAY_SIGNATURE"] = "WECHATPAY/SIGNTEST/" + headers["HTTP_WECHATPAY_SIGNATURE"]
    elif fault == "6 minutes old":
        headers = sign(body, wechat_key, timestamp=int(time.time()) - 360)
    elif fault == "6 minutes ahead":
        headers = sign(body, wechat_key, timestamp=int(time.time()) + 360)
    elif fault == "no signature headers":
        headers = {}
    else:
        headers = sign(body, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = post(client, body, headers)
    assert asks_again(response) and response.status_code == 401
    assert_not_credited(order)
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid) == ("rejected", False) and log.detail
    if fault == "probe":
        assert "SIGNTEST" in log.detail


def test_a_signature_probe_is_refused_then_its_correctly_signed_resend_credits(client, order, wechat_key):
    body = envelope(encrypt(transaction(order)))
    probe = sign(body, wechat_key)
    probe["HTTP_WECHATPAY_SIGNATURE"] = "WECHATPAY/SIGNTEST/" + probe["HTTP_WECHATPAY_SIGNATURE"]
    assert post(client, body, probe).status_code == 401
    assert post(client, body, sign(body, wechat_key)).status_code == 204
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID
    assert [n.outcome for n in Notification.objects.order_by("pk")] == ["rejected", "applied"]


@pytest.mark.parametrize("fault", ["tag flipped", "another APIv3 key", "other algorithm"])
def test_a_signed_notify_that_does_not_decrypt_is_refused_and_asked_again(client, order, wechat_key, fault):
    resource = encrypt(transaction(order), key="X" * 32 if fault == "another APIv3 key" else APIV3_KEY)
    if fault == "tag flipped":
        raw = bytearray(base64.b64decode(resource["ciphertext"]))
        raw[-1] ^= 0x01
        resource["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    elif fault == "other algorithm":
        resource["algorithm"] = "AEAD_SM4_GCM"
    body = envelope(resource)
    response = post(client, body, sign(body, wechat_key))
    assert asks_again(response)
    assert_not_credited(order)
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid) == ("rejected", True)


@pytest.mark.parametrize(
    ("fault", "incident"),
    [
        ("another mchid", None),
        ("another appid", None),
        ("another total", Incident.Kind.AMOUNT_MISMATCH),
        ("unknown order", Incident.Kind.UNKNOWN_ORDER),
        ("total as text", None),
    ],
)
def test_a_verified_notify_that_cannot_apply_is_recorded_never_credited_and_not_asked_again(
    client,
    order,
    wechat_key,
    fault,
    incident,
):
    overrides = {
        "another mchid": {"mchid": "1900000999"},
        "another appid": {"appid": "wx0000000000000bad"},
        "another total": {"amount": {"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}},
        "unknown order": {"out_trade_no": "R20261124NOSUCHORDER"},
        "total as text": {"amount": {"total": "1990", "currency": "CNY"}},
    }[fault]
    body = envelope(encrypt(transaction(order, **overrides)))
    response = post(client, body, sign(body, wechat_key))
    # A resend would carry the same content: WeChat is told it arrived, the record keeps why.
    assert response.status_code == 204
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.signature_valid is True and log.outcome in ("rejected", "incident") and log.detail
    if incident:
        assert Incident.objects.get().kind == incident and log.incident is not None


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"{not json", b'{"resource": "x"}', b"\x00\xff" * 10])
def test_a_signed_body_that_is_not_a_notify_is_never_a_500(client, order, wechat_key, body):
    response = post(client, body, sign(body, wechat_key))
    assert response.status_code in (204, 400)
    assert_not_credited(order)
    assert Notification.objects.get().outcome == "rejected"


def test_a_huge_body_is_refused_without_a_500(client, order, wechat_key):
    body = envelope(encrypt(transaction(order, attach="x" * 200_000)))
    response = post(client, body, sign(body, wechat_key))
    assert asks_again(response)
    assert_not_credited(order)
    assert len(Notification.objects.get().body) <= 1024  # an unverified body keeps only a prefix


def test_a_database_failure_before_recording_asks_again_with_a_500(client, order, wechat_key):
    body = envelope(encrypt(transaction(order)))
    with mock.patch.object(Notification, "record", side_effect=DatabaseError("down")):
        response = post(client, body, sign(body, wechat_key))
    assert response.status_code == 500 and response.json()["code"] == "FAIL"
    assert_not_credited(order)


def test_an_operator_can_process_a_stored_notify_again_after_the_5_minute_window(client, order, wechat_key):
    body = envelope(encrypt(transaction(order)))
    headers = sign(body, wechat_key)
    with mock.patch("payments.services.apply_payment", side_effect=RuntimeError("disk full")):
        assert post(client, body, headers).status_code == 500
    log = Notification.objects.get()
    assert log.outcome == "error"
    Notification.objects.filter(pk=log.pk).update(received_at=timezone.now() - timedelta(minutes=1))
    with mock.patch("time.time", return_value=time.time() + 3600):  # an hour later
        log.refresh_from_db()
        assert notifies.process(log) is True
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID


def _certificate(key, serial: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = timezone.now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def test_a_certificate_mode_merchant_refuses_a_public_key_callback(client, order, wechat_key, v3_site):
    v3_site.WECHAT_PAY_PUBLIC_KEY = ""
    v3_site.WECHAT_PAY_PUBLIC_KEY_ID = ""
    body = envelope(encrypt(transaction(order)))
    with mock.patch("wxproto.v3.Client.fetch_certificates", return_value={}) as fetch:
        response = post(client, body, sign(body, wechat_key))
    assert asks_again(response) and response.status_code == 401
    assert fetch.call_count == 0  # a PUB_KEY_ID is not a certificate serial: nothing to download
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.signature_valid is False and PUB_KEY_ID in log.detail


def test_during_a_migration_a_callback_signed_by_a_platform_certificate_verifies(client, order, wechat_key):
    platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = _certificate(platform_key, 0x5157F09EFDC096DE15EBE81A47057A7232F1B8E1)
    serial = f"{certificate.serial_number:X}"
    body = envelope(encrypt(transaction(order)))
    with mock.patch("wxproto.v3.Client.fetch_certificates", return_value={serial: certificate.public_key()}) as fetch:
        response = post(client, body, sign(body, platform_key, serial=serial))
        assert response.status_code == 204
        # the next one with the same serial uses the cached certificate
        second = envelope(encrypt(transaction(order)))
        assert post(client, second, sign(second, platform_key, serial=serial)).status_code == 204
    assert fetch.call_count == 1
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID


# -- refund notifies --------------------------------------------------------------------------


@pytest.fixture
def refund(order, wechat_key, client):
    body = envelope(encrypt(transaction(order)))
    assert post(client, body, sign(body, wechat_key)).status_code == 204
    order.refresh_from_db()
    with mock.patch("payments.services.send_refund", side_effect=lambda refund: refund):
        refund = order.start_refund(500, "测试退款")
    Refund.objects.filter(pk=refund.pk).update(refund_id="50300000002026112400000001")
    return refund


def refund_resource(refund, status: str = "SUCCESS", **overrides) -> dict:
    from django.conf import settings

    fields = {
        "mchid": settings.WECHAT_MCH_ID,
        "transaction_id": refund.order.transaction_id,
        "out_trade_no": refund.order.out_trade_no,
        "refund_id": "50300000002026112400000001",
        "out_refund_no": refund.out_refund_no,
        "refund_status": status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": refund.order.amount,
            "refund": refund.amount,
            "payer_total": refund.order.amount,
            "payer_refund": refund.amount,
        },
    }
    if status == "SUCCESS":
        fields["success_time"] = "2026-11-24T11:00:00+08:00"
    fields.update(overrides)
    return fields


@pytest.mark.parametrize(
    ("status", "event", "ends"),
    [
        ("SUCCESS", "REFUND.SUCCESS", Refund.Status.SUCCESS),
        ("CLOSED", "REFUND.CLOSED", Refund.Status.CLOSED),
        ("ABNORMAL", "REFUND.ABNORMAL", Refund.Status.ABNORMAL),
    ],
)
def test_a_refund_notify_settles_the_refund_once(client, refund, wechat_key, status, event, ends):
    body = envelope(encrypt(refund_resource(refund, status), associated_data="refund"), event_type=event)
    assert post(client, body, sign(body, wechat_key), REFUND_URL).status_code == 204
    assert post(client, body, sign(body, wechat_key), REFUND_URL).status_code == 204
    refund.refresh_from_db()
    refund.order.user.refresh_from_db()
    assert refund.status == ends
    # 1990 paid, 500 debited; a closed refund gives it back, once
    assert refund.order.user.balance == (1990 if status == "CLOSED" else 1490)


def test_a_refund_notify_with_another_amount_opens_an_incident_and_settles_nothing(client, refund, wechat_key):
    body = envelope(
        encrypt(
            refund_resource(refund, amount={"total": 1990, "refund": 499, "payer_total": 1990, "payer_refund": 499}),
            associated_data="refund",
        ),
        event_type="REFUND.SUCCESS",
    )
    assert post(client, body, sign(body, wechat_key), REFUND_URL).status_code == 204
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING
    assert Incident.objects.get().kind == Incident.Kind.REFUND_CONFLICT


def test_a_refund_notify_with_a_bad_signature_is_refused(client, refund, wechat_key):
    body = envelope(encrypt(refund_resource(refund), associated_data="refund"), event_type="REFUND.SUCCESS")
    headers = sign(body, wechat_key)
    headers["HTTP_WECHATPAY_TIMESTAMP"] = str(int(headers["HTTP_WECHATPAY_TIMESTAMP"]) - 1)
    assert post(client, body, headers, REFUND_URL).status_code == 401
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING

"""API v3 notifies: JSON with an AES-256-GCM resource, signed headers, retried until a 2xx.

What arrives at the merchant's notify_url is checked with wechatpayv3's decrypt_callback
(an independent client: it verifies the headers, then decrypts with the APIv3 key) and
with `cryptography` directly.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox.models import Attempt, Delivery, Fault, Refund
from tests.helpers import SUCCESS_XML
from tests.sandbox.test_v3_merchant_api import (
    OPENID,
    RFC3339_BEIJING,
    certificate_dir,
    keys,
    paid_trade,
    refund,
    v3_client,
    verifies,
)

pytestmark = pytest.mark.django_db(transaction=True)
FAIL_JSON = '{"code": "FAIL", "message": "失败"}'


@pytest.fixture
def v3pay(sandbox_url):
    return v3_client(sandbox_url)


@pytest.fixture
def now_retries(settings):
    """Retries are due at once (the schedule scaled to zero): each deliver_due() is one attempt."""
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0


def paid_with_notify(sandbox_url, client, out_trade_no, merchant, total=1000):
    return paid_trade(sandbox_url, client, out_trade_no, total, notify_url=merchant.url)


def first_notify(sandbox_url, client, receiver, out_trade_no, **fault) -> tuple[dict, bytes]:
    """The headers and body of the first notify of a trade paid under the switches `fault`."""
    merchant = receiver()
    Fault.objects.create(out_trade_no=out_trade_no, **fault)
    paid_with_notify(sandbox_url, client, out_trade_no, merchant)
    sandbox_delivery.deliver_due()
    return merchant.headers[0], merchant.received[0][1]


def decrypt(body: bytes) -> dict:
    """The resource, decrypted independently: AES-256-GCM, 12-byte ASCII nonce, AAD."""
    resource = json.loads(body)["resource"]
    plaintext = AESGCM(keys().files.apiv3_key.encode()).decrypt(
        resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]), resource["associated_data"].encode()
    )
    return json.loads(plaintext)


def test_a_v3_payment_notify_is_signed_json_that_wechatpayv3_decrypts(v3pay, sandbox_url, receiver):
    merchant = receiver()
    paid_with_notify(sandbox_url, v3pay, "V3N001", merchant, total=1990)
    sandbox_delivery.deliver_due()
    assert len(merchant.received) == 1
    headers, body = merchant.headers[0], merchant.received[0][1]
    assert headers["Content-Type"] == "application/json"
    assert headers["Wechatpay-Serial"] == keys().files.pay_public_key_id  # public-key mode
    assert headers["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    assert abs(int(headers["Wechatpay-Timestamp"]) - time.time()) < 60 and len(headers["Wechatpay-Nonce"]) >= 16
    envelope = json.loads(body)
    assert envelope["event_type"] == "TRANSACTION.SUCCESS" and envelope["resource_type"] == "encrypt-resource"
    assert envelope["summary"] == "支付成功" and envelope["id"] and RFC3339_BEIJING.match(envelope["create_time"])
    resource = envelope["resource"]
    assert resource["original_type"] == "transaction" and resource["associated_data"] == "transaction"
    assert resource["algorithm"] == "AEAD_AES_256_GCM" and re.match(r"^[A-Za-z0-9]{12}$", resource["nonce"])
    plaintext = v3pay.decrypt_callback(headers, body)
    assert plaintext is not None, "wechatpayv3 could not verify or decrypt the notify"
    transaction = json.loads(plaintext)
    assert transaction == decrypt(body)
    # The plaintext has the fields of the query answer.
    queried = json.loads(v3pay.query(out_trade_no="V3N001")[1])
    assert transaction == queried
    assert transaction["trade_state"] == "SUCCESS" and transaction["payer"] == {"openid": OPENID}
    assert transaction["amount"]["total"] == 1990 and transaction["mchid"] == settings.WECHAT_MCH_ID
    delivery = Delivery.objects.get()
    assert delivery.api_version == "v3" and delivery.state == Delivery.DELIVERED
    assert delivery.body.encode() == body  # the stored bytes, exactly
    assert delivery.headers["Wechatpay-Signature"] == headers["Wechatpay-Signature"]
    assert Attempt.objects.get().headers == delivery.headers


def test_a_v2_trade_keeps_its_xml_notify(wxpay, sandbox_url, receiver):
    from tests.helpers import create_order
    from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params

    merchant = receiver()
    prepay_id = create_order(wxpay, "V3N002", notify_url=merchant.url)["prepay_id"]
    cashier_pay(sandbox_url, pay_params(prepay_id))
    sandbox_delivery.deliver_due()
    assert merchant.received[0][1].startswith(b"<xml>") and "Wechatpay-Signature" not in merchant.headers[0]
    assert Delivery.objects.get().api_version == "v2"


@pytest.mark.parametrize(
    ("end_state", "event_type", "status"),
    [
        ("", "REFUND.SUCCESS", "SUCCESS"),
        ("REFUNDCLOSE", "REFUND.CLOSED", "CLOSED"),
        ("CHANGE", "REFUND.ABNORMAL", "ABNORMAL"),
    ],
)
def test_v3_refund_notifies(v3pay, sandbox_url, receiver, slow_refunds, end_state, event_type, status):
    merchant = receiver()
    paid_trade(sandbox_url, v3pay, "V3N003", 500)
    if end_state:
        Fault.objects.create(out_trade_no="V3N003", end_state=end_state)
    applied = refund(v3pay, "V3N003", "V3N003-1", 200, total=500, notify_url=merchant.url)[1]
    sandbox_delivery.deliver_due()
    assert merchant.received == []  # still PROCESSING
    Refund.objects.update(settle_at=timezone.now())
    sandbox_delivery.deliver_due()
    headers, body = merchant.headers[0], merchant.received[0][1]
    envelope = json.loads(body)
    assert envelope["event_type"] == event_type and envelope["resource"]["original_type"] == "refund"
    info = json.loads(v3pay.decrypt_callback(headers, body))
    assert info["refund_status"] == status and info["out_refund_no"] == "V3N003-1"
    assert info["refund_id"] == applied["refund_id"] and info["out_trade_no"] == "V3N003"
    assert info["mchid"] == settings.WECHAT_MCH_ID and info["transaction_id"] and info["user_received_account"]
    assert info["amount"] == {"total": 500, "refund": 200, "payer_total": 500, "payer_refund": 200}
    assert ("success_time" in info) == (status == "SUCCESS")
    if status == "SUCCESS":
        assert RFC3339_BEIJING.match(info["success_time"])


# --- retries: the HTTP status decides -------------------------------------------------------


@pytest.mark.parametrize("answer", [(200, FAIL_JSON), (204, ""), (200, SUCCESS_XML), (202, "")])
def test_any_2xx_ends_the_retries_whatever_the_body_says(v3pay, sandbox_url, receiver, now_retries, answer):
    merchant = receiver([answer])
    paid_with_notify(sandbox_url, v3pay, "V3N004", merchant)
    for _ in range(3):
        sandbox_delivery.deliver_due()
    assert len(merchant.received) == 1
    assert Delivery.objects.get().state == Delivery.DELIVERED
    attempt = Attempt.objects.get()
    assert attempt.outcome == "success" and attempt.label == "商户已接收（HTTP 2xx）"


def test_4xx_and_5xx_are_retried_each_time_signed_afresh_over_the_same_body(v3pay, sandbox_url, receiver, now_retries):
    merchant = receiver([(500, FAIL_JSON), (401, FAIL_JSON), (204, "")])
    paid_with_notify(sandbox_url, v3pay, "V3N005", merchant)
    for _ in range(5):
        sandbox_delivery.deliver_due()
    assert len(merchant.received) == 3
    bodies = {body for _, body in merchant.received}
    assert len(bodies) == 1
    assert len({h["Wechatpay-Nonce"] for h in merchant.headers}) == 3
    assert len({h["Wechatpay-Signature"] for h in merchant.headers}) == 3
    assert all(verifies(h, merchant.received[0][1]) for h in merchant.headers)
    assert list(Attempt.objects.values_list("outcome", "status_code")) == [("fail", 500), ("fail", 401), ("success", 204)]
    assert Delivery.objects.get().state == Delivery.DELIVERED


def test_a_retry_hours_later_has_a_fresh_timestamp(v3pay, sandbox_url, receiver, time_machine):
    merchant = receiver([(503, FAIL_JSON)])
    paid_with_notify(sandbox_url, v3pay, "V3N006", merchant)
    sandbox_delivery.deliver_due()
    first = int(merchant.headers[0]["Wechatpay-Timestamp"])
    time_machine.move_to(timezone.now() + timezone.timedelta(hours=3), tick=True)
    Delivery.objects.update(next_attempt_at=timezone.now())
    sandbox_delivery.deliver_due()
    second = int(merchant.headers[1]["Wechatpay-Timestamp"])
    assert second - first >= 3 * 3600 - 5 and abs(second - time.time()) < 60
    assert verifies(merchant.headers[1], merchant.received[1][1])


# --- the v3_notify_signature switch and the others ------------------------------------------


def test_a_signature_probe_comes_first_and_is_resent_correctly_signed(v3pay, sandbox_url, receiver, now_retries):
    merchant = receiver([(401, FAIL_JSON)])  # the merchant refuses what does not verify
    Fault.objects.create(out_trade_no="V3N007", v3_notify_signature="probe")
    paid_with_notify(sandbox_url, v3pay, "V3N007", merchant)
    sandbox_delivery.deliver_due()
    sandbox_delivery.deliver_due()
    probe, real = merchant.headers
    assert probe["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert v3pay.decrypt_callback(probe, merchant.received[0][1]) is None  # does not verify
    assert not real["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert v3pay.decrypt_callback(real, merchant.received[1][1]) is not None
    assert Delivery.objects.get().state == Delivery.DELIVERED
    assert [a.is_probe for a in Attempt.objects.all()] == [True, False]


def test_a_merchant_that_accepts_a_probe_is_told_so(v3pay, sandbox_url, receiver, now_retries):
    merchant = receiver()
    Fault.objects.create(out_trade_no="V3N008", v3_notify_signature="probe")
    paid_with_notify(sandbox_url, v3pay, "V3N008", merchant)
    sandbox_delivery.deliver_due()
    attempt = Attempt.objects.get()
    assert attempt.outcome == "probe_accepted" and len(merchant.received) == 1


def test_a_dropped_first_attempt_leaves_the_probe_for_the_first_one_sent(v3pay, sandbox_url, receiver, now_retries):
    merchant = receiver([(401, FAIL_JSON)])
    Fault.objects.create(out_trade_no="V3N009", v3_notify_signature="probe", drop_notifies=1)
    paid_with_notify(sandbox_url, v3pay, "V3N009", merchant)
    for _ in range(3):
        sandbox_delivery.deliver_due()
    assert [h["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/") for h in merchant.headers] == [True, False]


def test_a_certificate_signed_callback_in_migration(settings, sandbox_url, receiver):
    settings.SANDBOX_V3_KEY_MODE = "migration"
    client = v3_client(sandbox_url)
    merchant = receiver()
    paid_with_notify(sandbox_url, client, "V3N010", merchant)
    Fault.objects.create(out_trade_no="V3N010", v3_notify_signature="certificate")
    sandbox_delivery.deliver_due()
    headers = merchant.headers[0]
    assert headers["Wechatpay-Serial"] == keys().files.platform_serial
    # A public-key client that meets an unknown serial fetches the certificates (available
    # in migration), then verifies with the certificate the serial names.
    assert json.loads(client.decrypt_callback(headers, merchant.received[0][1]))["out_trade_no"] == "V3N010"


def test_migration_callbacks_come_with_the_public_key_by_default(settings, sandbox_url, receiver):
    settings.SANDBOX_V3_KEY_MODE = "migration"
    merchant = receiver()
    paid_with_notify(sandbox_url, v3_client(sandbox_url), "V3N011", merchant)
    sandbox_delivery.deliver_due()
    assert merchant.headers[0]["Wechatpay-Serial"] == keys().files.pay_public_key_id


def test_certificate_mode_notifies_are_signed_with_the_certificate(settings, sandbox_url, receiver, tmp_path):
    settings.SANDBOX_V3_KEY_MODE = "certificate"
    client = v3_client(sandbox_url, public_key=False, cert_dir=certificate_dir(tmp_path))
    merchant = receiver()
    paid_with_notify(sandbox_url, client, "V3N012", merchant)
    sandbox_delivery.deliver_due()
    assert merchant.headers[0]["Wechatpay-Serial"] == keys().files.platform_serial
    assert client.decrypt_callback(merchant.headers[0], merchant.received[0][1]) is not None


def test_a_public_key_signed_callback_even_in_certificate_mode(settings, sandbox_url, receiver, tmp_path):
    settings.SANDBOX_V3_KEY_MODE = "certificate"
    client = v3_client(sandbox_url, public_key=False, cert_dir=certificate_dir(tmp_path))
    headers, body = first_notify(sandbox_url, client, receiver, "V3N013", v3_notify_signature="public_key")
    assert headers["Wechatpay-Serial"] == keys().files.pay_public_key_id
    assert verifies(headers, body)


def test_a_stale_timestamp_is_six_minutes_old_and_otherwise_well_signed(v3pay, sandbox_url, receiver):
    headers, body = first_notify(sandbox_url, v3pay, receiver, "V3N014", v3_notify_signature="stale")
    age = time.time() - int(headers["Wechatpay-Timestamp"])
    assert 6 * 60 - 5 <= age <= 6 * 60 + 30
    # The signature verifies: only a merchant that checks the 5-minute window refuses it
    # (wechatpayv3 does not: docs/wechat-pay-v3.md#7-libraries).
    assert verifies(headers, body)


def test_a_flipped_gcm_tag_verifies_but_does_not_decrypt(v3pay, sandbox_url, receiver):
    headers, body = first_notify(sandbox_url, v3pay, receiver, "V3N015", v3_notify_signature="bad_tag")
    assert verifies(headers, body)
    assert v3pay.decrypt_callback(headers, body) is None
    with pytest.raises(InvalidTag):
        decrypt(body)


def test_corrupt_signature_spoils_v3_notifies_too(v3pay, sandbox_url, receiver):
    merchant = receiver()
    paid_with_notify(sandbox_url, v3pay, "V3N016", merchant)
    # Switched on after the trade was paid: a v3 notify is signed when it is sent.
    Fault.objects.create(out_trade_no="V3N016", corrupt_signature=True)
    sandbox_delivery.deliver_due()
    headers, body = merchant.headers[0], merchant.received[0][1]
    assert not verifies(headers, body)
    assert v3pay.decrypt_callback(headers, body) is None
    assert decrypt(body)["out_trade_no"] == "V3N016"  # the content itself is genuine


def test_report_total_fee_changes_the_v3_notifys_amount(v3pay, sandbox_url, receiver):
    headers, body = first_notify(sandbox_url, v3pay, receiver, "V3N017", report_total_fee=1)
    transaction = json.loads(v3pay.decrypt_callback(headers, body))  # still well signed
    assert (transaction["amount"]["total"], transaction["amount"]["payer_total"]) == (1, 1)


def test_drop_duplicate_and_delay_switches_work_for_v3(v3pay, sandbox_url, receiver, now_retries):
    dropped = receiver()
    Fault.objects.create(out_trade_no="V3N018", drop_notifies=1)
    paid_with_notify(sandbox_url, v3pay, "V3N018", dropped)
    sandbox_delivery.deliver_due()
    sandbox_delivery.deliver_due()
    assert len(dropped.received) == 1
    twice = receiver()
    Fault.objects.create(out_trade_no="V3N019", duplicate_notifies=True)
    paid_with_notify(sandbox_url, v3pay, "V3N019", twice)
    sandbox_delivery.deliver_due()
    assert len(twice.received) == 2 and twice.received[0][1] == twice.received[1][1]
    assert twice.headers[0]["Wechatpay-Signature"] == twice.headers[1]["Wechatpay-Signature"]
    late = receiver()
    Fault.objects.create(out_trade_no="V3N020", notify_delay_seconds=60)
    paid_with_notify(sandbox_url, v3pay, "V3N020", late)
    sandbox_delivery.deliver_due()
    assert late.received == []
    assert Delivery.objects.get(trade__out_trade_no="V3N020").next_attempt_at.timestamp() > time.time() + 55


# --- the dashboard and the admin -------------------------------------------------------------


def test_the_dashboard_shows_the_v3_facts_and_never_a_secret(client, settings):
    files = keys().files
    page = client.get(reverse("sandbox:index")).content.decode()
    for fact in (
        files.pay_public_key_id,
        files.platform_serial,
        files.merchant_serial,
        str(files.directory),
        "public_key",
        "API v3 密钥",
        "微信支付公钥 ID",
        "平台证书序列号",
        "商户证书序列号",
        "密钥目录",
    ):
        assert fact in page, fact
    assert files.apiv3_key not in page and "PRIVATE KEY" not in page
    for path in (files.merchant_key, files.pay_private_key, files.platform_private_key):
        body = path.read_text().split("-----")[2].strip().splitlines()[0]
        assert body not in page
    settings.SANDBOX_V3_KEY_MODE = "certificate"
    assert "平台证书（较早入驻的商户）" in client.get(reverse("sandbox:index")).content.decode()


def test_the_v3_notify_signature_switch_is_set_on_the_dashboard_and_shown_in_the_admin(
    client, admin_client, v3pay, sandbox_url, receiver, now_retries
):
    page = client.get(reverse("sandbox:index")).content.decode()
    assert 'name="v3_notify_signature"' in page and "签名探测" in page
    response = client.post(
        reverse("sandbox:index"),
        {"out_trade_no": "V3N021", "drop_notifies": "0", "notify_delay_seconds": "0", "v3_notify_signature": "stale"},
    )
    assert response.status_code == 302
    assert Fault.objects.get(out_trade_no="V3N021").v3_notify_signature == "stale"
    assert "v3 通知签名：Wechatpay-Timestamp 为 6 分钟前" in client.get(reverse("sandbox:index")).content.decode()
    merchant = receiver([(500, FAIL_JSON)])
    paid_with_notify(sandbox_url, v3pay, "V3N021", merchant)
    sandbox_delivery.deliver_due()
    page = client.get(reverse("sandbox:index")).content.decode()
    assert "商户拒收（HTTP 非 2xx，将重试）" in page and "Wechatpay-Timestamp:" in page and "v3 JSON" in page
    assert admin_client.get(reverse("admin:sandbox_fault_changelist")).status_code == 200
    delivery = Delivery.objects.get()
    detail = admin_client.get(reverse("admin:sandbox_delivery_change", args=[delivery.pk])).content.decode()
    assert "Wechatpay-Signature" in detail
    for model in ("trade", "refund", "delivery"):
        assert admin_client.get(reverse(f"admin:sandbox_{model}_changelist"), {"api_version": "v3"}).status_code == 200

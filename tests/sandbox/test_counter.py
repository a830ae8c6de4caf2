"""The sandbox's merchant side of spending: its counter charges member codes through the real
/api/v1/ with an API client it made with the site's own command, and its receiver checks the
signature of every webhook the site sends."""

from __future__ import annotations

import io
import json
import re

import pytest

from devtools.wechat_sandbox.counter import verify
from devtools.wechat_sandbox.models import MerchantSecret, WebhookReceipt
from outbox import delivery as worker
from outbox.models import WebhookEndpoint
from tests.factories import make_user
from tests.wallet.conftest import fund
from wallet.models import ApiClient, Charge, MemberCode

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def member():
    user = make_user("shopper", openid="oShopper")
    fund(user, 3000)
    return user


def sale_key(page: str) -> str:
    return re.search(r'name="sale_key" value="([0-9a-f]+)"', page).group(1)


def test_the_counter_sets_itself_up_once_with_the_sites_commands(client, sandbox_url):
    assert client.get("/sandbox/pos/").status_code == 200
    client.get("/sandbox/pos/")
    api_client = ApiClient.objects.get()
    assert (api_client.name, api_client.store) == ("沙箱收银台", "沙箱门店")
    assert ApiClient.authenticate(MerchantSecret.objects.get(name="counter_api_key").value) == api_client
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url == sandbox_url + "webhooks/receive" and "charge.succeeded" in endpoint.events


def test_the_counter_charges_a_code_once_however_often_the_sale_is_sent(client, sandbox_url, member):
    page = client.get("/sandbox/pos/").content.decode()
    code = MemberCode.current(member).code
    sale = {"action": "charge", "sale_key": sale_key(page), "member_code": code, "amount": "12.50", "description": "洗衣"}
    client.post("/sandbox/pos/", sale)
    result = client.get("/sandbox/pos/").content.decode()
    assert "扣款成功 ¥12.50" in result and "会员余额 ¥17.50" in result
    client.post("/sandbox/pos/", sale)  # the same form again: the same Idempotency-Key
    assert Charge.objects.count() == 1
    member.refresh_from_db()
    assert member.balance == 1750
    refused = client.post("/sandbox/pos/", {**sale, "sale_key": "another-sale"}, follow=True).content.decode()
    assert "扣款失败" in refused and "会员码无效或已过期" in refused


def test_the_counter_reverses_a_charge(client, sandbox_url, member):
    page = client.get("/sandbox/pos/").content.decode()
    code = MemberCode.current(member).code
    client.post("/sandbox/pos/", {"action": "charge", "sale_key": sale_key(page), "member_code": code, "amount": "5"})
    number = Charge.objects.get().number
    answer = client.post("/sandbox/pos/", {"action": "reverse", "charge": number}, follow=True).content.decode()
    assert "已撤销 ¥5.00" in answer
    member.refresh_from_db()
    assert member.balance == 3000


def test_the_receiver_verifies_what_the_site_sends_and_refuses_what_it_did_not(client, sandbox_url, member):
    client.get("/sandbox/pos/")
    Charge.create(amount=100, user_id=member.pk, store="一号店")
    assert worker.run_pass() == 1
    receipt = WebhookReceipt.objects.get()
    assert receipt.signature_valid and receipt.event_type == "charge.succeeded"
    assert json.loads(receipt.body)["data"]["amount"] == 100
    forged = client.post(
        "/sandbox/webhooks/receive",
        receipt.body,
        content_type="application/json",
        HTTP_WEBHOOK_ID="evt_forged",
        HTTP_WEBHOOK_TIMESTAMP="1700000000",
        HTTP_WEBHOOK_SIGNATURE="v1,AAAA",
    )
    assert forged.status_code == 400 and not WebhookReceipt.objects.get(webhook_id="evt_forged").signature_valid
    page = client.get("/sandbox/webhooks/").content.decode()
    assert "签名有效" in page and "签名无效" in page and "charge.succeeded" in page


def test_verify_checks_the_time_window_and_the_signature():
    secret = WebhookEndpoint.new_secret()
    body = b'{"type":"x"}'
    signature = worker.sign(WebhookEndpoint(secret=secret).key, "evt_1", "1000", body)
    headers = {"webhook-id": "evt_1", "webhook-timestamp": "1000", "webhook-signature": signature}
    assert verify(secret, headers, body, now=1000) == ""
    assert "5 分钟" in verify(secret, headers, body, now=1000 + 301)
    assert verify(secret, headers, body + b" ", now=1000) == "签名不符"


def test_make_run_sets_the_merchant_side_up_before_the_first_recharge(sandbox_url):
    from django.core.management import call_command

    for _ in range(2):
        call_command("sandbox_merchant", stdout=io.StringIO())
    assert ApiClient.objects.count() == 1 and WebhookEndpoint.objects.count() == 1
    from orders.models import LedgerEntry

    member = make_user("early", openid="oEarly")
    LedgerEntry.adjust(member.pk, 100, "开卡礼", operator=None)  # after the endpoint: announced to it
    worker.run_pass()
    assert WebhookReceipt.objects.get().signature_valid

"""POST /payments/wechat/notify/: record first, verify, apply once, answer WeChat's XML."""

from __future__ import annotations

from unittest import mock

import pytest
import responses
from django.db import DatabaseError
from django.db.models import Sum

from orders.models import LedgerEntry, RechargeOrder
from payments.models import Notification
from tests.factories import make_order, make_user
from tests.helpers import notify_xml
from wxproto import v2 as wxpay

URL = "/payments/wechat/notify/"


@pytest.fixture
def payer(db):
    return make_user("payer", openid="oPayer")


@pytest.fixture
def order(payer):
    return make_order(payer, amount=1990)


def send(client, body: bytes):
    response = client.post(URL, data=body, content_type="text/xml")
    assert response.status_code == 200 and response["Content-Type"] == "text/xml"  # as WeChat's own answers
    return wxpay.parse_xml(response.content)["return_code"]


def assert_not_credited(order):
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and order.transaction_id is None
    assert order.user.balance == 0 and not LedgerEntry.objects.exists()


def test_a_verified_notify_credits_the_balance_once(client, order, settings):
    assert send(client, notify_xml(order.out_trade_no, 1990)) == "SUCCESS"
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id and order.paid_at
    assert order.user.balance == 1990
    entry = LedgerEntry.objects.get()
    assert (entry.amount, entry.kind, entry.order, entry.balance_after) == (1990, "recharge", order, 1990)
    log = Notification.objects.get()
    assert log.outcome == "applied" and log.signature_valid and log.out_trade_no == order.out_trade_no
    assert log.body_text.startswith("<xml>") and log.remote_addr == "127.0.0.1"
    assert settings.WECHAT_API_KEY not in log.body_text + log.detail


def test_a_repeated_notify_is_acknowledged_and_changes_nothing(client, order):
    body = notify_xml(order.out_trade_no, 1990)
    assert send(client, body) == "SUCCESS"
    assert send(client, body) == "SUCCESS"
    assert send(client, notify_xml(order.out_trade_no, 1990)) == "SUCCESS"  # a new nonce, same payment
    order.user.refresh_from_db()
    assert order.user.balance == 1990 and LedgerEntry.objects.count() == 1
    assert list(Notification.objects.order_by("pk").values_list("outcome", flat=True)) == ["applied", "duplicate", "duplicate"]


def test_an_hmac_sha256_notify_is_applied(client, order, settings):
    settings.WECHAT_SIGN_TYPE = "HMAC-SHA256"
    assert send(client, notify_xml(order.out_trade_no, 1990, sign_type="HMAC-SHA256")) == "SUCCESS"
    order.user.refresh_from_db()
    assert order.user.balance == 1990


def test_a_tampered_twin_of_a_good_notify_is_refused(client, order):
    good = notify_xml(order.out_trade_no, 1990)
    tampered = good.replace(b"<total_fee>1990</total_fee>", b"<total_fee>99990</total_fee>")
    assert tampered != good
    assert send(client, tampered) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is False


@pytest.mark.parametrize(
    "body_factory",
    [
        pytest.param(lambda o: notify_xml(o.out_trade_no, 1990, key="f" * 32), id="another merchant's key"),
        pytest.param(lambda o: notify_xml(o.out_trade_no, 1990, sign="0" * 32), id="bad sign"),
        pytest.param(
            lambda o: notify_xml(o.out_trade_no, 1990).replace(b"<sign>", b"<nosign>").replace(b"</sign>", b"</nosign>"),
            id="missing sign",
        ),
        pytest.param(lambda o: notify_xml(o.out_trade_no, 1990, appid="wx_foreign"), id="foreign appid"),
        pytest.param(lambda o: notify_xml(o.out_trade_no, 1990, mch_id="1000000001"), id="foreign mch_id"),
        pytest.param(lambda o: b"", id="empty body"),
        pytest.param(lambda o: b"<xml><a>1", id="broken XML"),
        pytest.param(lambda o: b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>', id="XXE"),
        pytest.param(
            lambda o: b'<!DOCTYPE xml [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><a>&b;</a></xml>', id="entity expansion"
        ),
        pytest.param(lambda o: b"<xml><a>" + b"x" * 200_000 + b"</a></xml>", id="huge body"),
        pytest.param(
            lambda o: notify_xml(o.out_trade_no, 1990).replace(b"</xml>", b"<total_fee>1</total_fee></xml>"), id="repeated field"
        ),
    ],
)
def test_bad_notifies_are_never_credited_and_answered_fail(client, order, body_factory):
    assert send(client, body_factory(order)) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.detail


def test_result_code_fail_is_acknowledged_without_credit(client, order):
    assert send(client, notify_xml(order.out_trade_no, 1990, result_code="FAIL", err_code="BANKERROR")) == "SUCCESS"
    assert_not_credited(order)
    assert Notification.objects.get().outcome == "ignored"


def test_an_amount_mismatch_is_not_applied_and_flagged(client, order, caplog):
    assert send(client, notify_xml(order.out_trade_no, 1)) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "incident" and "19.90" in log.detail and "0.01" in log.detail
    assert log.incident.kind == "amount_mismatch" and log.incident.order == order and log.incident.is_open
    assert any("INCIDENT" in r.message for r in caplog.records)


def test_notify_needs_post(client):
    assert client.get(URL).status_code == 405


def test_a_database_error_mid_apply_leaves_nothing_half_done_and_the_retry_credits_once(client, order):
    body = notify_xml(order.out_trade_no, 1990)
    with mock.patch("orders.models.LedgerEntry.post", side_effect=DatabaseError("disk full")):
        assert send(client, body) == "FAIL"
    assert_not_credited(order)
    assert Notification.objects.get().outcome == "error"
    assert send(client, body) == "SUCCESS"
    order.user.refresh_from_db()
    assert order.user.balance == 1990 and LedgerEntry.objects.count() == 1


def test_the_balance_is_the_sum_of_the_ledger(client, payer):
    orders = [make_order(payer, amount=a) for a in (100, 2990, 1)]
    for n, o in enumerate(orders):
        send(client, notify_xml(o.out_trade_no, o.amount, transaction_id=f"42000000002026112300000000{n:02d}"))
    payer.refresh_from_db()
    assert payer.balance == 3091 == LedgerEntry.objects.filter(user=payer).aggregate(s=Sum("amount"))["s"]


@pytest.mark.django_db(transaction=True)
def test_the_notify_path_is_ten_statements_in_one_commit_then_three_and_calls_nobody(client, django_assert_max_num_queries):
    order = make_order(make_user("q", openid="oQ"), amount=500)
    body = notify_xml(order.out_trade_no, 500)
    # record; then in one transaction: lock the order, lock the user, the order, the balance,
    # the ledger row, the recharge's lot and its move, the event for the merchant's webhooks
    # (outbox), the outcome. Django 5.2 also logs the transaction's BEGIN and COMMIT.
    control = 2
    with responses.RequestsMock() as outbound, django_assert_max_num_queries(10 + control):
        assert send(client, body) == "SUCCESS"
    assert len(outbound.calls) == 0
    with responses.RequestsMock() as outbound, django_assert_max_num_queries(3 + control):
        assert send(client, body) == "SUCCESS"
    assert len(outbound.calls) == 0

"""The payment notify and the status poll after the outside audit: what WeChat, the payer and
the operator see when a notify is odd, when the database fails, and when pages poll hard."""

from __future__ import annotations

import logging
from datetime import timedelta
from unittest import mock

import pytest
import responses
import time_machine
from django.conf import settings
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from orders.models import LedgerEntry, RechargeOrder
from payments import services
from payments.models import UNVERIFIED_BODY_BYTES, Incident, Notification
from payments.sweeper import purge_rejected_notifies, run_pass
from tests.factories import make_order, make_user
from tests.helpers import notify_xml, spy_on_order_queries
from wxproto import v2 as wxpay

URL = "/payments/wechat/notify/"


@pytest.fixture
def payer(db):
    return make_user("payer", openid="oPayer")


@pytest.fixture
def order(payer):
    return make_order(payer, amount=1990)


def post_notify(client, body: bytes, content_type: str = "text/xml"):
    """POST a notify as WeChat does; WeChat only ever sees HTTP 200 with SUCCESS or FAIL XML."""
    response = client.post(URL, data=body, content_type=content_type)
    assert response.status_code == 200
    return wxpay.parse_xml(response.content)["return_code"]


def signed_notify(
    out_trade_no: str, total_fee: int | str, *, sign_type: str = "MD5", sign_type_field: str | None = None, **overrides
) -> bytes:
    """A payment notify signed with `sign_type`, carrying `sign_type_field` as its own sign_type
    field, or no sign_type field at all when it is None (as WeChat has been seen to send)."""
    fields = wxpay.parse_xml(notify_xml(out_trade_no, 1990))
    fields.pop("sign")
    fields.pop("sign_type", None)
    fields.update(total_fee=str(total_fee), cash_fee=str(total_fee), **overrides)
    if sign_type_field is not None:
        fields["sign_type"] = sign_type_field
    fields["sign"] = wxpay.sign(fields, settings.WECHAT_API_KEY, sign_type)
    return wxpay.to_xml(fields).encode()


def assert_credited_once(order, amount: int = 1990):
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.transaction_id
    assert order.user.balance == amount
    assert LedgerEntry.objects.filter(order=order).count() == 1


def assert_not_credited(order):
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and order.transaction_id is None
    assert order.user.balance == 0 and not LedgerEntry.objects.exists()


# -- 1. bodies PostgreSQL cannot hold as text are recorded and refused -----------------------------


def _with_nul(order) -> bytes:
    good = notify_xml(order.out_trade_no, 1990)
    return good.replace(b"<appid>", b"<appid>\x00", 1)


def _utf16(order) -> bytes:
    return notify_xml(order.out_trade_no, 1990).decode("utf-8").encode("utf-16")


@pytest.mark.parametrize("content_type", ["text/xml", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("make_body", [pytest.param(_with_nul, id="NUL byte"), pytest.param(_utf16, id="UTF-16")])
def test_a_notify_with_a_nul_byte_or_in_utf16_is_recorded_and_answered_fail(client, order, make_body, content_type):
    body = make_body(order)
    assert post_notify(client, body, content_type) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is not True and log.detail
    assert log.body == body[:UNVERIFIED_BODY_BYTES]
    assert "\x00" not in log.body_text


# -- 2. the first insert fails ---------------------------------------------------------------------


def test_a_database_error_while_recording_a_notify_answers_fail_and_the_retry_credits(client, order):
    body = notify_xml(order.out_trade_no, 1990)
    with mock.patch("payments.models._RECORD.run", side_effect=OperationalError("server closed")):
        assert post_notify(client, body) == "FAIL"
    assert not Notification.objects.exists()
    assert_not_credited(order)
    assert post_notify(client, body) == "SUCCESS"
    assert_credited_once(order)


# -- 3. the outcome is written with the money ----------------------------------------------------------


def test_when_the_outcome_cannot_be_written_the_payment_is_rolled_back_and_the_retry_credits_once(client, order):
    real_finish = Notification.finish

    def finish_failing_on_applied(self, outcome, *args, **kwargs):
        if outcome == "applied":
            raise DatabaseError("could not write the outcome")
        return real_finish(self, outcome, *args, **kwargs)

    body = notify_xml(order.out_trade_no, 1990)
    with mock.patch.object(Notification, "finish", finish_failing_on_applied):
        assert post_notify(client, body) == "FAIL"
    assert_not_credited(order)
    assert Notification.objects.get().outcome == "error"
    assert post_notify(client, body) == "SUCCESS"
    assert post_notify(client, body) == "SUCCESS"
    assert_credited_once(order)
    assert list(Notification.objects.order_by("pk").values_list("outcome", flat=True)) == ["error", "applied", "duplicate"]


# -- 4. the signature is checked with the merchant's sign type ---------------------------------------------


def test_an_hmac_merchant_applies_an_hmac_notify_that_carries_no_sign_type(client, order, settings):
    settings.WECHAT_SIGN_TYPE = "HMAC-SHA256"
    body = signed_notify(order.out_trade_no, 1990, sign_type="HMAC-SHA256")
    assert b"sign_type" not in body
    assert post_notify(client, body) == "SUCCESS"
    assert_credited_once(order)
    assert Notification.objects.get().outcome == "applied"


@pytest.mark.parametrize("sign_type_field", [None, "MD5"])
def test_an_hmac_merchant_refuses_an_md5_signed_notify(client, order, settings, sign_type_field):
    settings.WECHAT_SIGN_TYPE = "HMAC-SHA256"
    assert post_notify(client, signed_notify(order.out_trade_no, 1990, sign_type_field=sign_type_field)) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is False


def test_an_md5_merchant_refuses_an_hmac_notify_even_when_it_says_hmac(client, order, settings):
    assert settings.WECHAT_SIGN_TYPE == "MD5"
    body = signed_notify(order.out_trade_no, 1990, sign_type="HMAC-SHA256", sign_type_field="HMAC-SHA256")
    assert post_notify(client, body) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is False


# -- 5. total_fee is ASCII digits or nothing --------------------------------------------------------------

ODD_FEES = ["²", "１９９０", "١٩٩٠", " 1990", "1990.0", "-1990", "+1990", "1_990", ""]


@pytest.mark.parametrize("total_fee", ODD_FEES)
def test_a_notify_whose_total_fee_is_not_plain_digits_is_refused_and_its_log_row_finished(client, order, total_fee):
    assert post_notify(client, signed_notify(order.out_trade_no, total_fee)) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.processed_at is not None
    if total_fee.strip() == total_fee:
        # The signature verifies: it is the amount itself that is refused.
        assert log.signature_valid is True and "total_fee" in log.detail


ORDERQUERY_BASE = "https://wechat.test/"


@responses.activate
@pytest.mark.parametrize(("total_fee", "credited"), [("1990", True), ("１９９０", False), ("١٩٩٠", False), ("²", False)])
def test_an_orderquery_answer_whose_total_fee_is_not_plain_digits_does_not_credit(order, settings, total_fee, credited):
    settings.WECHAT_PAY_API = "v2"  # v2's XML answer; v3's JSON amounts: tests/providers/test_wechat_v3_provider.py
    settings.WECHAT_PAY_BASE_URL = ORDERQUERY_BASE
    answer = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": wxpay.nonce(),
        "result_code": "SUCCESS",
        "trade_state": "SUCCESS",
        "out_trade_no": order.out_trade_no,
        "total_fee": total_fee,
        "transaction_id": "4200000000202611230000000077",
        "time_end": "20261123120000",
    }
    answer["sign"] = wxpay.sign(answer, settings.WECHAT_API_KEY, settings.WECHAT_SIGN_TYPE)
    responses.post(ORDERQUERY_BASE + "pay/orderquery", body=wxpay.to_xml(answer))
    synced = services.sync_order(order)
    assert len(responses.calls) == 1
    if credited:
        assert synced.status == RechargeOrder.Status.PAID
        assert_credited_once(order)
    else:
        assert synced.status == RechargeOrder.Status.PENDING
        assert_not_credited(order)


# -- 8. status polls ask WeChat at most once per interval (sandbox over HTTP) -------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_status_polls_within_a_second_ask_wechat_once_and_again_after_the_interval(client, sandbox_url):
    payer = make_user("poller", openid="oPoller000000000000000000001")
    client.force_login(payer)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        placed = client.post("/payments/jsapi/prepay/", {"amount": "10.00"}, content_type="application/json")
        assert placed.status_code == 200
        status_url = f"/payments/orders/{placed.json()['out_trade_no']}/status/"
        with spy_on_order_queries() as orderquery:
            answers = [client.get(status_url) for _ in range(50)]
            assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "pending")}
            assert orderquery.call_count == 1
            clock.shift(services.STATUS_POLL_INTERVAL - timedelta(milliseconds=1))
            client.get(status_url)
            assert orderquery.call_count == 1
            clock.shift(timedelta(milliseconds=1))
            assert client.get(status_url).json()["status"] == "pending"
            assert orderquery.call_count == 2


# -- 11. unverified bodies are kept short, and purged after a while ----------------------------------------

ATTACH = "充值备注" * 400  # about 4.8 kB of UTF-8: far more than UNVERIFIED_BODY_BYTES


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param({"sign": "0" * 32}, id="bad sign"),
        pytest.param({"key": "f" * 32}, id="another merchant's key"),
    ],
)
def test_a_notify_whose_signature_does_not_verify_keeps_only_a_prefix_of_its_body(client, order, forge):
    body = notify_xml(order.out_trade_no, 1990, attach=ATTACH, **forge)
    assert len(body) > UNVERIFIED_BODY_BYTES
    assert post_notify(client, body) == "FAIL"
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is False
    assert len(log.body) <= UNVERIFIED_BODY_BYTES and log.body == body[:UNVERIFIED_BODY_BYTES]
    assert_not_credited(order)


def test_without_a_v2_api_key_a_v2_notify_signed_with_the_empty_key_is_refused(client, order, settings):
    # A merchant on API v3 alone need not set WECHAT_API_KEY; the v2 endpoint stays mounted.
    settings.WECHAT_API_KEY = ""
    fields = wxpay.parse_xml(notify_xml(order.out_trade_no, 1990))
    fields["sign"] = wxpay.sign({k: v for k, v in fields.items() if k != "sign"}, "")
    assert post_notify(client, wxpay.to_xml(fields).encode()) == "FAIL"
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is False and "WECHAT_API_KEY" in log.detail
    assert_not_credited(order)


def test_a_verified_notify_keeps_its_whole_body(client, order):
    body = notify_xml(order.out_trade_no, 1990, attach=ATTACH)
    assert post_notify(client, body) == "SUCCESS"
    log = Notification.objects.get()
    assert log.outcome == "applied" and log.body == body
    assert ATTACH in log.body_text


def test_a_verified_notify_for_another_merchant_keeps_its_whole_body_for_the_operator(client, order):
    body = notify_xml(order.out_trade_no, 1990, attach=ATTACH, mch_id="1000000001")
    assert post_notify(client, body) == "FAIL"
    log = Notification.objects.get()
    assert log.outcome == "rejected" and log.signature_valid is True and log.body == body


def test_rejected_notifies_are_purged_after_the_retention_period_and_the_rest_kept(client, payer, settings):
    retention = timedelta(days=settings.NOTIFY_LOG_RETENTION_DAYS)
    now = timezone.now()
    paid = make_order(payer, amount=500)

    def post_at(moment, body):
        with time_machine.travel(moment, tick=False):
            post_notify(client, body)

    post_at(now - retention - timedelta(days=1), b"<xml><junk>old</junk></xml>")
    post_at(now - retention - timedelta(days=1), notify_xml(paid.out_trade_no, 500))
    post_at(now - retention + timedelta(days=1), b"<xml><junk>recent</junk></xml>")
    post_at(now, notify_xml("NOSUCHORDER", 500, sign="0" * 32))
    assert sorted(Notification.objects.values_list("outcome", flat=True)) == ["applied", "rejected", "rejected", "rejected"]

    assert purge_rejected_notifies() == 1
    assert not Notification.objects.filter(raw_body=b"<xml><junk>old</junk></xml>").exists()
    assert Notification.objects.filter(raw_body=b"<xml><junk>recent</junk></xml>").exists()
    assert Notification.objects.filter(outcome="applied").exists()
    assert Notification.objects.count() == 3
    assert purge_rejected_notifies() == 0


def test_the_reconcile_pass_purges_old_rejected_notifies(client, db, settings):
    with time_machine.travel(timezone.now() - timedelta(days=settings.NOTIFY_LOG_RETENTION_DAYS + 1), tick=False):
        post_notify(client, b"not xml")
    assert run_pass().purged == 1
    assert not Notification.objects.exists()


# -- 12. money taken after a local close ----------------------------------------------------------------------


def test_money_taken_after_a_local_close_is_credited_once_and_opens_an_incident(client, order):
    assert order.close()
    body = notify_xml(order.out_trade_no, 1990)
    assert post_notify(client, body) == "SUCCESS"
    assert post_notify(client, body) == "SUCCESS"  # WeChat's retry changes nothing
    assert_credited_once(order)
    incident = Incident.objects.get()
    assert incident.kind == "paid_after_close" and incident.is_open and incident.order == order
    first = Notification.objects.order_by("pk").first()
    assert first.outcome == "applied" and first.incident == incident


# -- 13. logging -------------------------------------------------------------------------------------------


def test_an_applied_and_a_duplicate_notify_each_log_a_line_naming_the_order(client, order, caplog):
    caplog.set_level(logging.INFO)
    body = notify_xml(order.out_trade_no, 1990)
    for expected in ("applied", "duplicate"):
        caplog.clear()
        assert post_notify(client, body) == "SUCCESS"
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert any(order.out_trade_no in line and expected in line for line in lines), lines


@pytest.mark.parametrize("foreign", [{"appid": "wx_foreign"}, {"mch_id": "1000000001"}], ids=["appid", "mch_id"])
def test_a_validly_signed_notify_for_another_merchant_is_logged_as_an_error(client, order, caplog, foreign):
    assert post_notify(client, notify_xml(order.out_trade_no, 1990, **foreign)) == "FAIL"
    assert_not_credited(order)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(next(iter(foreign.values())) in line for line in errors), errors


# -- 14. an unknown order ------------------------------------------------------------------------------------


def test_a_notify_for_an_unknown_order_opens_one_incident_however_often_wechat_retries(client, db):
    body = notify_xml("20261123120000109999999999", 1990)
    for _ in range(3):
        assert post_notify(client, body) == "FAIL"
    assert post_notify(client, notify_xml("20261123120000109999999999", 1990)) == "FAIL"  # a new nonce
    incident = Incident.objects.get()
    assert incident.kind == "unknown_order" and incident.is_open and incident.occurrences == 4
    assert incident.out_trade_no == "20261123120000109999999999" and incident.order is None
    logs = Notification.objects.all()
    assert len(logs) == 4 and {(n.outcome, n.incident_id) for n in logs} == {("incident", incident.pk)}
    assert not LedgerEntry.objects.exists()

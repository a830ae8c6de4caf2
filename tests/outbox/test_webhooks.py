"""Webhooks to the merchant, as the merchant's server sees them: one event per balance change,
written with the money (or not at all), signed the Standard Webhooks way (checked with the
reference library), retried on the schedule, never sent to a private address in production,
shared by several runners without overlap, resent by an operator."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from orders.models import LedgerEntry, Refund
from outbox import delivery as worker
from outbox.models import RETRY_SCHEDULE, Delivery, Event, WebhookEndpoint
from tests.admin import operator, settled_order
from tests.factories import make_user
from tests.helpers import Receiver
from wallet.models import Charge

pytestmark = pytest.mark.django_db

ALL = ["recharge.succeeded", "refund.succeeded", "refund.failed", "charge.succeeded", "charge.reversed", "balance.adjusted"]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def answering(receiver: Receiver, *answers) -> Receiver:
    receiver.answers = list(answers)
    return receiver


def endpoint_for(receiver: Receiver, events=ALL) -> WebhookEndpoint:
    return WebhookEndpoint.add(receiver.url, list(events))


def sent(receiver: Receiver) -> list[dict]:
    return [json.loads(body) for _, body in receiver.received]


# -- events, with the money ---------------------------------------------------------------------


def test_each_balance_change_writes_its_event_in_the_same_transaction():
    user = make_user("ev", openid="oEv")
    order = settled_order(user, 3000)
    LedgerEntry.adjust(user.pk, 500, "补偿", operator=None)
    charge = Charge.create(amount=1250, user_id=user.pk, store="一号店")
    charge.reverse(250, "少收")
    events = list(Event.objects.order_by("pk").values_list("type", "data"))
    assert [t for t, _ in events] == ["recharge.succeeded", "balance.adjusted", "charge.succeeded", "charge.reversed"]
    assert events[0][1] == {
        "order": order.out_trade_no,
        "member_id": user.pk,
        "amount": 3000,
        "bonus": 0,
        "balance": 3000,
        "paid_at": events[0][1]["paid_at"],
    }
    assert events[2][1]["balance"] == 2250 and events[2][1]["store"] == "一号店"
    assert events[3][1]["amount_reversed"] == 250 and events[3][1]["balance"] == 2500


def test_a_change_that_rolls_back_announces_nothing():
    user = make_user("rb", openid="oRb")
    with pytest.raises(RuntimeError), transaction.atomic():
        LedgerEntry.adjust(user.pk, 500, "补偿", operator=None)
        raise RuntimeError("the request failed after the adjustment")
    assert not Event.objects.exists() and not LedgerEntry.objects.exists()


def test_refunds_announce_how_they_ended():
    user = make_user("rf", openid="oRf")
    order = settled_order(user, 3000)
    ok = order.start_refund(1000, "退一部分")
    ok.settle(Refund.Status.SUCCESS)
    closed = order.start_refund(500, "再退一点")
    closed.settle(Refund.Status.CLOSED)
    refund_events = list(Event.objects.filter(type__startswith="refund.").order_by("pk").values_list("type", "data"))
    assert refund_events == [
        (
            "refund.succeeded",
            {"refund": ok.out_refund_no, "order": order.out_trade_no, "member_id": user.pk, "amount": 1000, "balance": 2000},
        ),
        (
            "refund.failed",
            {"refund": closed.out_refund_no, "order": order.out_trade_no, "member_id": user.pk, "amount": 500, "balance": 2000},
        ),
    ]


# -- delivery ---------------------------------------------------------------------------------


def test_a_delivery_is_signed_the_standard_webhooks_way(receiver):
    endpoint = endpoint_for(receiver)
    user = make_user("sig", openid="oSig")
    LedgerEntry.adjust(user.pk, 700, "开卡礼", operator=None)
    assert worker.run_pass() == 1
    (body,) = [b for _, b in receiver.received]
    headers = {k.lower(): v for k, v in receiver.headers[0].items()}
    assert Webhook(endpoint.secret).verify(body, headers) is not None  # the reference library accepts it
    event = Event.objects.get()
    assert headers["webhook-id"] == event.event_id and headers["content-type"] == "application/json"
    payload = json.loads(body)
    assert payload["type"] == "balance.adjusted" and payload["data"]["amount"] == 700 and payload["data"]["balance"] == 700
    with pytest.raises(Exception):  # noqa: B017 (the library's own error type)
        Webhook(WebhookEndpoint.new_secret()).verify(body, headers)
    assert Delivery.objects.get().status == Delivery.Status.SUCCEEDED


def test_only_subscribed_active_endpoints_created_before_the_event_get_it(receiver):
    charges_only = endpoint_for(receiver, ["charge.succeeded"])
    off = endpoint_for(receiver)
    off.is_active = False
    off.save()
    user = make_user("sub", openid="oSub")
    LedgerEntry.adjust(user.pk, 700, "开卡礼", operator=None)
    Charge.create(amount=100, user_id=user.pk)
    worker.dispatch()
    later = endpoint_for(receiver)
    worker.dispatch()
    assert list(Delivery.objects.values_list("endpoint", "event__type")) == [(charges_only.pk, "charge.succeeded")]
    assert not later.deliveries.exists()


def test_a_failing_endpoint_is_retried_on_the_schedule_with_the_same_webhook_id_then_failed(receiver):
    answering(receiver, *[(500, '{"error": "down"}')] * 20)
    endpoint_for(receiver)
    user = make_user("retry", openid="oRetry")
    LedgerEntry.adjust(user.pk, 700, "开卡礼", operator=None)
    start = timezone.now()
    worker.run_pass()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert abs((delivery.next_attempt_at - start) - RETRY_SCHEDULE[0]) < timedelta(seconds=3)
    moment = start
    for wait in RETRY_SCHEDULE:
        moment += wait + timedelta(seconds=1)
        with time_machine.travel(moment, tick=False):
            assert worker.run_pass() == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED and delivery.attempts == len(RETRY_SCHEDULE) + 1
    assert delivery.attempt_log.count() == len(RETRY_SCHEDULE) + 1
    assert len({h["webhook-id"] for h in receiver.headers}) == 1
    assert delivery.attempt_log.first().answer == '{"error": "down"}'


def test_a_redirect_is_not_followed(receiver):
    answering(receiver, (302, '{"location": "elsewhere"}'))
    endpoint_for(receiver)
    LedgerEntry.adjust(make_user("re", openid="oRe").pk, 700, "开卡礼", operator=None)
    worker.run_pass()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_status_code, len(receiver.received)) == ("pending", 302, 1)


def test_an_endpoint_that_never_answers_times_out_and_is_retried(settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts connections, never answers
    try:
        WebhookEndpoint.add(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", ALL)
        LedgerEntry.adjust(make_user("to", openid="oTo").pk, 700, "开卡礼", operator=None)
        worker.run_pass()
    finally:
        silent.close()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.last_status_code is None and "Timeout" in delivery.last_error
    assert delivery.attempt_log.get().duration_ms < 3000


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://example.com/hook", "https"), ("https://localhost/hook", "内网或本机"), ("https://127.0.0.1/hook", "内网或本机")],
)
def test_in_production_only_public_https_endpoints_are_called(settings, url, why):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    endpoint = WebhookEndpoint(url=url, events=ALL, secret=WebhookEndpoint.new_secret())
    endpoint.save()
    LedgerEntry.adjust(make_user("prod", openid="oProd").pk, 700, "开卡礼", operator=None)
    worker.run_pass()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and why in delivery.last_error and delivery.last_status_code is None


def test_runners_share_the_work_and_a_dead_runners_deliveries_come_back(receiver):
    endpoint_for(receiver)
    user = make_user("two", openid="oTwo")
    for n in range(3):
        LedgerEntry.adjust(user.pk, 100 + n, "开卡礼", operator=None)
    worker.dispatch()
    first = worker.claim(limit=2)
    second = worker.claim(limit=5)
    assert len(first) == 2 and len(second) == 1 and not {d.pk for d in first} & {d.pk for d in second}
    assert worker.deliver(second[0]) and worker.run_pass() == 0  # the first runner's two are still held
    # The first runner dies holding two: after its hold they are anyone's, and go out once each.
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert worker.run_pass() == 2
    assert sorted(json.loads(b)["data"]["amount"] for _, b in receiver.received) == [100, 101, 102]


def test_an_operator_resends_a_failed_delivery(receiver):
    answering(receiver, (500, "{}"))
    endpoint_for(receiver)
    LedgerEntry.adjust(make_user("op", openid="oOp").pk, 700, "开卡礼", operator=None)
    worker.run_pass()
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED)
    _, viewer = operator("viewer", "outbox.view_delivery")
    assert viewer.post(f"/admin/outbox/delivery/{delivery.pk}/resend/").status_code == 403
    _, ops = operator("ops", "outbox.view_delivery", "outbox.resend_delivery")
    assert 'data-testid="resend"' in ops.get(f"/admin/outbox/delivery/{delivery.pk}/change/").content.decode()
    assert ops.post(f"/admin/outbox/delivery/{delivery.pk}/resend/").status_code == 302
    worker.run_pass()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and len(receiver.received) == 2


def test_an_endpoint_added_in_the_admin_shows_its_secret_once(receiver):
    _, ops = operator("hooks", "outbox.add_webhookendpoint", "outbox.change_webhookendpoint", "outbox.view_webhookendpoint")
    answer = ops.post(
        "/admin/outbox/webhookendpoint/add/", {"url": receiver.url, "events": ["charge.succeeded"], "is_active": "on"}
    )
    endpoint = WebhookEndpoint.objects.get()
    page = answer.content.decode()
    assert endpoint.secret in page and "离开本页后不再显示" in page and "no-store" in answer["Cache-Control"]
    assert endpoint.secret not in ops.get(f"/admin/outbox/webhookendpoint/{endpoint.pk}/change/").content.decode()


def test_the_admin_refuses_a_plain_http_endpoint_in_production(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    _, ops = operator("hooks2", "outbox.add_webhookendpoint", "outbox.view_webhookendpoint")
    answer = ops.post(
        "/admin/outbox/webhookendpoint/add/", {"url": "http://pos.example.com/hook", "events": ["charge.succeeded"]}
    )
    assert "必须是 https" in answer.content.decode() and not WebhookEndpoint.objects.exists()


def test_the_command_adds_an_endpoint_and_prints_its_secret_once():
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "add_webhook_endpoint",
        "https://pos.example.com/hook",
        "--events",
        "recharge.succeeded,charge.succeeded",
        stdout=out,
        stderr=err,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert out.getvalue().strip() == endpoint.secret and endpoint.secret not in err.getvalue()
    assert endpoint.events == ["charge.succeeded", "recharge.succeeded"]
    with pytest.raises(Exception, match="未知的事件"):
        call_command(
            "add_webhook_endpoint", "https://x.example.com/", "--events", "everything", stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_the_command_refuses_plain_http_in_production(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(Exception, match="https"):
        call_command("add_webhook_endpoint", "http://pos.example.com/hook", "--events", "charge.succeeded", stdout=io.StringIO())
    assert not WebhookEndpoint.objects.exists()


def test_an_endpoint_turned_off_gets_no_more_deliveries(receiver):
    endpoint = endpoint_for(receiver)
    LedgerEntry.adjust(make_user("off", openid="oOff").pk, 700, "开卡礼", operator=None)
    worker.dispatch()
    endpoint.is_active = False
    endpoint.save()
    assert worker.run_pass() == 0 and not receiver.received
    endpoint.is_active = True
    endpoint.save()
    assert worker.run_pass() == 1


def test_an_endpoint_that_drips_its_answer_is_cut_at_the_timeout(settings):
    """One byte a second, for ever: the attempt still ends at WEBHOOK_TIMEOUT_SECONDS."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def drip():
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.wait(0.3):
            try:
                conn.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        WebhookEndpoint.add(f"http://127.0.0.1:{server.getsockname()[1]}/hook", ALL)
        LedgerEntry.adjust(make_user("drip", openid="oDrip").pk, 700, "开卡礼", operator=None)
        started = time.monotonic()
        worker.run_pass()
        took = time.monotonic() - started
    finally:
        stop.set()
        server.close()
    delivery = Delivery.objects.get()
    assert took < 3 and delivery.status == "pending" and "1 秒内" in delivery.last_error


def test_what_an_endpoint_answers_is_kept_even_with_a_nul_in_it(receiver):
    answering(receiver, (500, '{"error": "bad\u0000byte"}'))
    endpoint_for(receiver)
    LedgerEntry.adjust(make_user("nul", openid="oNul").pk, 700, "开卡礼", operator=None)
    worker.run_pass()
    attempt = Delivery.objects.get().attempt_log.get()
    assert attempt.status_code == 500 and "\\x00" in attempt.answer and "\x00" not in attempt.answer


def test_a_port_that_does_not_exist_is_refused_when_the_endpoint_is_added(settings):
    with pytest.raises(ValueError, match="端口无效"):
        WebhookEndpoint.add("https://pos.example.com:99999/hook", ALL)


def test_one_delivery_that_cannot_be_sent_does_not_stop_the_others(receiver, monkeypatch):
    endpoint_for(receiver)
    broken = WebhookEndpoint(url="https://pos.example.com:99999/hook", events=ALL, secret=WebhookEndpoint.new_secret())
    broken.save()  # as an older version could have stored it
    LedgerEntry.adjust(make_user("mix", openid="oMix").pk, 700, "开卡礼", operator=None)
    assert worker.run_pass() == 2
    by_endpoint = dict(Delivery.objects.values_list("endpoint__url", "last_error"))
    assert "端口无效" in by_endpoint[broken.url] and len(receiver.received) == 1


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "::127.0.0.1", "::ffff:10.0.0.5", "10.1.2.3", "fe80::1"],
)
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_not_public(address):
    assert not worker.is_public(address)


def test_public_addresses_are_public():
    assert worker.is_public("8.8.8.8") and worker.is_public("2606:4700:4700::1111")

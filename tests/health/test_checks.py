"""Each check turns red from what happened (a tampered notify, a refund WeChat closed, an order
it refused, an open incident, a webhook that failed), on the panel with a link to the list
showing it, and green again once it is past its window or handled; other apps add checks."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from common.health import CHECKS, RED, Check
from health.checks import snapshot
from orders.models import Refund
from outbox.models import Delivery, Event, WebhookEndpoint
from payments.models import Incident, Notification
from tests.admin import settled_order
from tests.factories import make_order, make_user
from tests.health import others_running
from tests.helpers import notify_xml

pytestmark = pytest.mark.django_db


def row(client, kind: str) -> tuple[str, str, str]:
    """The panel's row for `kind`: its state, its text and the list it links to."""
    html = client.get("/admin/").content.decode()
    found = re.search(rf'<li[^>]*data-testid="health-{kind}" data-state="(\w+)">\s*<a href="([^"]*)">(.*?)</li>', html, re.S)
    assert found, f"no row {kind}"
    return found[1], re.sub(r"<[^>]+>", "", found[3]).strip(), found[2].replace("&amp;", "&")


def check(kind: str) -> Check:
    return next(c for c in snapshot() if c.kind == kind)


def listed(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_a_tampered_notify_is_red_for_an_hour(admin_client, client, clock):
    others_running()
    order = make_order(make_user("payer", openid="oPayer"), amount=1990)
    tampered = notify_xml(order.out_trade_no, 1990).replace(b"<total_fee>1990</total_fee>", b"<total_fee>99990</total_fee>")
    client.post("/payments/wechat/notify/", data=tampered, content_type="text/xml")
    assert Notification.objects.get().outcome == Notification.Outcome.REJECTED
    state, text, url = row(admin_client, "notifies")
    assert state == "red" and "近 1 小时 1 条（已拒绝 1，处理失败 0）" in text
    assert '<td class="field-outcome">已拒绝</td>' in listed(admin_client, url)
    clock.shift(3601)
    others_running()
    assert row(admin_client, "notifies")[0] == "ok"


def test_the_notify_list_it_links_to_shows_the_failures_only(admin_client, clock):
    Notification.objects.create(kind="payment", raw_body=b"<xml/>", outcome=Notification.Outcome.ERROR, out_trade_no="T-ERR")
    Notification.objects.create(kind="payment", raw_body=b"<xml/>", outcome=Notification.Outcome.APPLIED, out_trade_no="T-OK")
    Notification.objects.create(
        kind="payment", raw_body=b"<xml/>", outcome=Notification.Outcome.REJECTED, out_trade_no="T-OLD",
        received_at=timezone.now() - timedelta(hours=2),
    )  # fmt: skip
    state, text, url = row(admin_client, "notifies")
    assert state == "red" and "处理失败 1" in text
    page = listed(admin_client, url)
    assert "T-ERR" in page and "T-OK" not in page and "T-OLD" not in page


def test_refunds_wechat_closed_or_that_went_abnormal_are_red(admin_client, clock):
    user = make_user("refunded", openid="oRefunded")
    closed = settled_order(user, 3000).start_refund(1000, "用户申请")
    closed.settle(Refund.Status.CLOSED)
    state, text, url = row(admin_client, "refunds")
    assert state == "red" and "近 24 小时退款关闭或失败 1 笔，退款异常 0 笔" in text
    assert closed.out_refund_no in listed(admin_client, url)
    abnormal = settled_order(user, 2000).start_refund(2000, "用户申请")
    abnormal.settle(Refund.Status.ABNORMAL)
    clock.shift(timedelta(days=2))  # the closed one is past its day; the abnormal one waits for an operator
    state, text, url = row(admin_client, "refunds")
    assert state == "red" and "退款关闭或失败 0 笔，退款异常 1 笔" in text
    page = listed(admin_client, url)
    assert abnormal.out_refund_no in page and closed.out_refund_no in page  # the list is by status


def test_orders_wechat_refused_are_red_with_its_codes(admin_client, clock):
    user = make_user("refused", openid="oRefused")
    for code in ("NOAUTH", "NOAUTH", "APPID_MCHID_NOT_MATCH"):
        make_order(user).refuse(code)
    pending = make_order(user)
    state, text, url = row(admin_client, "refused_orders")
    assert state == "red" and "近 1 小时 3 笔（NOAUTH ×2、APPID_MCHID_NOT_MATCH ×1）" in text
    assert pending.out_trade_no not in listed(admin_client, url)
    clock.shift(3601)
    assert row(admin_client, "refused_orders")[0] == "ok"


def test_open_incidents_are_red_until_handled(admin_client):
    order = settled_order(make_user("inc", openid="oInc"))
    incident = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "关闭后仍收到付款", order=order)
    state, text, url = row(admin_client, "incidents")
    assert (state, text) == ("red", "未处理异常 1 条待处理") and url == "/admin/payments/incident/?state=open"
    incident.resolve(None)
    assert row(admin_client, "incidents")[0] == "ok"


def test_failed_webhooks_are_red_and_retrying_ones_a_warning(admin_client):
    endpoint = WebhookEndpoint.add("https://merchant.example.com/hooks", ["balance.adjusted"])
    event = Event.objects.create(event_id="evt_1", type="balance.adjusted", data={})
    delivery = Delivery.objects.create(
        event=event, endpoint=endpoint, attempts=1, last_error="HTTP 502", last_attempt_at=timezone.now()
    )
    state, text, url = row(admin_client, "deliveries")
    assert (state, text, url) == ("warn", "Webhook 推送失败 重试中 1 条", "/admin/outbox/delivery/?status=pending")
    Delivery.objects.filter(pk=delivery.pk).update(attempts=3)
    assert row(admin_client, "deliveries")[0] == "red"  # failing for minutes: the endpoint is down
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, attempts=9)
    state, text, url = row(admin_client, "deliveries")
    assert (state, text, url) == ("red", "Webhook 推送失败 近 24 小时失败 1 条", "/admin/outbox/delivery/?status=failed")


def test_another_app_adds_a_check_and_a_broken_one_shows_without_hiding_the_others(admin_client, monkeypatch):
    def wechat_messages(now):
        return Check(kind="messages", label="微信消息发送失败", state=RED, count=2, detail="近 1 小时 2 条", url="/admin/")

    def broken(now):
        raise RuntimeError("the table is missing")

    monkeypatch.setitem(CHECKS, "messaging.health.wechat_messages", wechat_messages)
    monkeypatch.setitem(CHECKS, "messaging.health.broken", broken)
    assert row(admin_client, "messages")[:2] == ("red", "微信消息发送失败 近 1 小时 2 条")
    state, text, _ = row(admin_client, "check:messaging.health.broken")
    assert state == "red" and text == "健康检查出错 RuntimeError: the table is missing"
    assert row(admin_client, "incidents")[0] == "ok"

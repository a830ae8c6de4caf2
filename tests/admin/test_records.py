"""The read-only records: refunds (with the refund-query action), the ledger, the
notification log (with "process again") and incidents (with "mark handled")."""

from __future__ import annotations

import time

import pytest

from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import notifies
from payments.models import Incident, Notification
from tests.admin import (
    messages_of,
    operator,
    paid_at_sandbox,
    payer_user,
    refund_form,
    refund_url,
    run_action,
    settled_order,
)
from tests.factories import make_order
from tests.helpers import notify_xml

REFUNDS = "/admin/orders/refund/"
LEDGER = "/admin/orders/ledgerentry/"
NOTIFICATIONS = "/admin/payments/notification/"
INCIDENTS = "/admin/payments/incident/"


@pytest.fixture
def payer(db):
    return payer_user()


def refund_of(order, amount=300, state: str = "", refund_id: str = "", error: str = "") -> Refund:
    """A refund started the way the refund page starts one (the balance debited), without WeChat."""
    refund = order.start_refund(amount, "测试退款")
    if refund_id:
        refund.accept(refund_id)
    if error:
        refund.note_error(error)
    if state:
        refund.settle(state)
    return refund


@pytest.mark.django_db
class TestRefundsAndLedger:
    def test_the_refund_list_shows_yuan_status_and_links(self, admin_client, payer):
        order = settled_order(payer, 1000)
        refund = refund_of(order, error="NETWORK: timeout")
        html = admin_client.get(REFUNDS).content.decode()
        assert refund.out_refund_no in html and "¥3.00" in html and "退款中" in html and "NETWORK: timeout" in html
        assert f'href="/admin/orders/rechargeorder/{order.pk}/change/"' in html and payer.username in html

    @pytest.mark.parametrize("term", ["out_refund_no", "out_trade_no", "refund_id"])
    def test_refunds_are_found_by(self, admin_client, payer, term):
        refund = refund_of(settled_order(payer), refund_id="50300000000000000000000000000001")
        other = refund_of(settled_order(payer))
        value = {"out_trade_no": refund.order.out_trade_no}.get(term) or getattr(refund, term)
        html = admin_client.get(REFUNDS, {"q": value}).content.decode()
        assert refund.out_refund_no in html and other.out_refund_no not in html

    def test_the_refund_page_is_read_only(self, admin_client, payer):
        refund = refund_of(settled_order(payer))
        response = admin_client.get(f"{REFUNDS}{refund.pk}/change/")
        assert response.status_code == 200 and b'name="_save"' not in response.content
        assert "测试退款" in response.content.decode()
        assert admin_client.get(f"{REFUNDS}add/").status_code == 403
        assert admin_client.get(REFUNDS + "?status__exact=0").status_code == 200

    def test_the_refund_query_action_needs_the_refund_permission(self, payer):
        refund_of(settled_order(payer))
        _, viewer = operator("viewer", "orders.view_refund")
        assert "sync_selected" not in viewer.get(REFUNDS).content.decode()
        _, refunder = operator("refunder", "orders.view_refund", "orders.refund_rechargeorder")
        assert "sync_selected" in refunder.get(REFUNDS).content.decode()

    def test_the_refund_query_action_skips_settled_refunds(self, admin_client, payer):
        refund = refund_of(settled_order(payer), state=Refund.Status.SUCCESS)
        said = messages_of(run_action(admin_client, REFUNDS, "sync_selected", [refund.pk]))
        assert said == ["跳过 1 笔已完成的退款（只查询退款中的）"]

    def test_the_ledger_shows_yuan_operator_and_refund_and_is_read_only(self, admin_client, admin_user, payer):
        order = settled_order(payer, 1000)
        LedgerEntry.adjust(payer.pk, -250, "冲正", admin_user)
        html = admin_client.get(LEDGER).content.decode()
        assert "¥10.00" in html and "-¥2.50" in html and "¥7.50" in html and admin_user.username in html
        assert order.out_trade_no in html
        entry = LedgerEntry.objects.filter(kind="adjustment").get()
        response = admin_client.get(f"{LEDGER}{entry.pk}/change/")
        assert response.status_code == 200 and b'name="_save"' not in response.content
        assert admin_client.get(f"{LEDGER}add/").status_code == 403
        assert admin_client.get(LEDGER, {"kind__exact": "adjustment"}).content.decode().count("冲正") == 1
        assert order.out_trade_no in admin_client.get(LEDGER, {"q": order.out_trade_no}).content.decode()
        assert admin_client.get(LEDGER, {"q": "nobody-here"}).content.decode().count("¥10.00") == 0


@pytest.mark.django_db(transaction=True)
def test_the_refund_query_action_settles_a_refund_through_the_sandbox(admin_client, sandbox_url):
    order = paid_at_sandbox(payer_user("querier"), "10.00")
    form = refund_form(admin_client, order)
    form.update(amount="4", reason="测试")
    admin_client.post(refund_url(order), form)
    refund = Refund.objects.get()
    time.sleep(0.2)  # the sandbox settles 0.05 s after accepting
    said = messages_of(run_action(admin_client, REFUNDS, "sync_selected", [refund.pk]))
    assert said[-1] == "已向微信查询 1 笔退款：退款成功 1 笔"
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS and order.refunded_amount == 400


@pytest.mark.django_db
class TestNotifications:
    def test_the_log_lists_and_the_page_shows_the_body_and_links(self, admin_client, payer):
        order = make_order(payer, amount=1000)
        log = Notification.record("payment", notify_xml(order.out_trade_no, 1000), "127.0.0.1")
        assert notifies.process(log)
        html = admin_client.get(NOTIFICATIONS).content.decode()
        assert order.out_trade_no in html and "已入账" in html
        page = admin_client.get(f"{NOTIFICATIONS}{log.pk}/change/").content.decode()
        assert '<pre class="notify-body">' in page and "&lt;xml&gt;" in page and "transaction_id" in page
        assert f'href="/admin/orders/rechargeorder/{order.pk}/change/"' in page and 'name="_save"' not in page
        assert order.out_trade_no in admin_client.get(NOTIFICATIONS, {"out_trade_no": order.out_trade_no}).content.decode()

    def test_an_unknown_order_and_an_incident_are_shown_as_such(self, admin_client):
        log = Notification.record("payment", notify_xml("NOSUCHORDER", 1000), "127.0.0.1")
        assert not notifies.process(log)
        log.refresh_from_db()
        page = admin_client.get(f"{NOTIFICATIONS}{log.pk}/change/").content.decode()
        assert "NOSUCHORDER（本站没有这个订单）" in page
        assert f'href="/admin/payments/incident/{log.incident_id}/change/"' in page

    def test_bytes_that_are_not_utf8_are_shown_escaped(self, admin_client):
        log = Notification.objects.create(
            kind="payment", raw_body=b"\xff\x00<xml>", outcome="error", traceback="Traceback (most recent call last): boom"
        )
        page = admin_client.get(f"{NOTIFICATIONS}{log.pk}/change/").content.decode()
        assert "\\xff\\x00&lt;xml&gt;" in page and "boom" in page

    def test_process_again_applies_received_and_failed_notifies_and_skips_the_rest(self, admin_client, payer):
        order = make_order(payer, amount=1000)
        pending = Notification.record("payment", notify_xml(order.out_trade_no, 1000), "127.0.0.1")
        broken = Notification.objects.create(kind="payment", raw_body=b"not xml", outcome="error")
        done = Notification.objects.create(kind="payment", raw_body=b"<xml/>", outcome="applied")
        said = messages_of(run_action(admin_client, NOTIFICATIONS, "process_again", [pending.pk, broken.pk, done.pk]))
        assert "重新处理 2 条通知：成功 1 条，失败 1 条" in said
        assert "跳过 1 条：只有“处理失败”或“已接收”的通知可以重新处理" in said
        order.refresh_from_db()
        payer.refresh_from_db()
        assert order.status == RechargeOrder.Status.PAID and payer.balance == 1000
        assert Notification.objects.get(pk=broken.pk).outcome == "rejected"

    def test_process_again_needs_the_change_notification_permission(self):
        Notification.objects.create(kind="payment", raw_body=b"<xml/>")
        _, viewer = operator("viewer", "payments.view_notification")
        assert "process_again" not in viewer.get(NOTIFICATIONS).content.decode()
        _, changer = operator("changer", "payments.view_notification", "payments.change_notification")
        assert "process_again" in changer.get(NOTIFICATIONS).content.decode()


@pytest.mark.django_db
class TestIncidents:
    def test_the_list_shows_open_incidents_by_default(self, admin_client, payer):
        order = make_order(payer)
        open_one = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "关闭后仍收款", order=order)
        done = Incident.report(Incident.Kind.AMOUNT_MISMATCH, "金额不符已处理", order=order)
        done.resolve(None, "ok")
        html = admin_client.get(INCIDENTS).content.decode()
        assert "关闭后仍收款" in html and "金额不符已处理" not in html
        assert f'href="/admin/orders/rechargeorder/{order.pk}/change/"' in html and "未处理" in html
        resolved = admin_client.get(INCIDENTS, {"state": "resolved"}).content.decode()
        assert "金额不符已处理" in resolved and "关闭后仍收款" not in resolved
        everything = admin_client.get(INCIDENTS, {"state": "all"}).content.decode()
        assert "金额不符已处理" in everything and "关闭后仍收款" in everything
        assert open_one.message in admin_client.get(INCIDENTS, {"kind__exact": "paid_after_close"}).content.decode()

    def test_the_page_links_its_notifications_and_has_no_save_button(self, admin_client):
        log = Notification.record("payment", notify_xml("NOSUCH", 1000), "127.0.0.1")
        notifies.process(log)
        incident = Incident.objects.get()
        response = admin_client.get(f"{INCIDENTS}{incident.pk}/change/")
        html = response.content.decode()
        assert f'href="/admin/payments/notification/{log.pk}/change/"' in html
        assert f"/admin/payments/notification/?incident={incident.pk}" in html
        assert b'name="_save"' not in response.content
        assert admin_client.get(f"{INCIDENTS}add/").status_code == 403
        assert admin_client.get(f"{INCIDENTS}{incident.pk}/delete/").status_code == 403

    def test_mark_handled_resolves_with_the_operator(self, admin_client, admin_user, payer):
        first = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "一", order=make_order(payer))
        second = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "二", order=make_order(payer))
        second.resolve(None)
        asked = run_action(admin_client, INCIDENTS + "?state=all", "resolve_selected", [first.pk, second.pk])
        assert "请写明如何处理的" in asked.content.decode() and Incident.objects.get(pk=first.pk).is_open
        said = messages_of(
            run_action(
                admin_client,
                INCIDENTS + "?state=all",
                "resolve_selected",
                [first.pk, second.pk],
                confirm="yes",
                reason="已电话核实，用户已收到退款",
            )
        )
        assert "已将 1 条异常标记为已处理" in said and "跳过 1 条：已由他人处理" in said
        first.refresh_from_db()
        assert not first.is_open and first.resolved_by == admin_user
        assert first.resolution == "已电话核实，用户已收到退款"

    def test_mark_handled_needs_the_change_incident_permission(self, payer):
        Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "一", order=make_order(payer))
        _, viewer = operator("viewer", "payments.view_incident")
        assert "resolve_selected" not in viewer.get(INCIDENTS).content.decode()
        _, changer = operator("changer", "payments.view_incident", "payments.change_incident")
        assert "resolve_selected" in changer.get(INCIDENTS).content.decode()

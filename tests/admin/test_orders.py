"""The order list and page, and the order actions (sync, close, refund) with their permissions."""

from __future__ import annotations

import pytest

from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import RechargeOrder, Refund
from payments.models import Incident, Notification
from tests.admin import (
    change_url,
    messages_of,
    operator,
    paid_at_sandbox,
    pay_at_sandbox,
    payer_user,
    placed_at_sandbox,
    refund_url,
    run_action,
    settled_order,
)
from tests.factories import make_order
from tests.helpers import wechat_code

ORDERS = "/admin/orders/rechargeorder/"


@pytest.fixture
def payer(db):
    return payer_user()


@pytest.mark.django_db
class TestListAndPage:
    def test_the_list_shows_yuan_status_text_and_an_incident_marker(self, admin_client, payer):
        paid = settled_order(payer, 1990)
        Refund.objects.create(order=paid, out_refund_no="RF" + "1" * 26, amount=500, reason="r")
        Refund.objects.get().settle(Refund.Status.SUCCESS)
        pending = make_order(payer, amount=1000)
        Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "测试异常", order=pending)
        html = admin_client.get(ORDERS).content.decode()
        assert "¥19.90" in html and "部分退款（已退 ¥5.00）" in html and "待支付" in html
        assert html.count("⚠ 异常") == 1 and "有未处理异常" in html

    def test_the_open_incident_filter_keeps_only_orders_with_one(self, admin_client, payer):
        flagged, calm = make_order(payer), make_order(payer)
        Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "测试异常", order=flagged)
        resolved = make_order(payer)
        Incident.report(Incident.Kind.AMOUNT_MISMATCH, "已处理的", order=resolved).resolve(None)
        html = admin_client.get(ORDERS + "?incident=open").content.decode()
        assert flagged.out_trade_no in html and calm.out_trade_no not in html and resolved.out_trade_no not in html

    @pytest.mark.parametrize(
        "query",
        [
            "status__exact=1",
            "channel__exact=jsapi",
            "incident=open&status__exact=0",
            "created_at__gte=2000-01-01+00%3A00%3A00%2B08%3A00",
        ],
    )
    def test_the_filters_work(self, admin_client, payer, query):
        paid = settled_order(payer)
        response = admin_client.get(f"{ORDERS}?{query}")
        assert response.status_code == 200
        assert (paid.out_trade_no in response.content.decode()) == ("incident" not in query)

    @pytest.mark.parametrize("field", ["out_trade_no", "transaction_id", "username", "openid"])
    def test_search_finds_an_order_by(self, admin_client, payer, field):
        order, other = settled_order(payer), make_order(payer_user("other"))
        term = {"username": payer.username, "openid": order.openid}.get(field) or getattr(order, field)
        html = admin_client.get(ORDERS, {"q": term}).content.decode()
        assert order.out_trade_no in html and other.out_trade_no not in html

    def test_the_page_is_read_only_with_refunds_ledger_incidents_and_notifications(self, admin_client, payer):
        order = settled_order(payer, 1000)
        Notification.objects.create(kind="payment", raw_body=b"<xml/>", out_trade_no=order.out_trade_no)
        Incident.report(Incident.Kind.OTHER_TRANSACTION, "另一笔支付", order=order)
        html = admin_client.get(change_url(order)).content.decode()
        assert b'name="_save"' not in html.encode() and 'name="_continue"' not in html and "保存" not in html
        assert "¥10.00" in html and "余额流水" in html and "充值" in html and "另一笔支付" in html
        assert f"/admin/payments/notification/?out_trade_no={order.out_trade_no}" in html and "查看 1 条通知" in html
        assert f'href="{refund_url(order)}"' in html
        assert admin_client.post(change_url(order), {}).status_code == 403

    def test_a_pending_order_has_no_refund_button(self, admin_client, payer):
        assert "refundlink" not in admin_client.get(change_url(make_order(payer))).content.decode()

    def test_orders_cannot_be_added_or_deleted(self, admin_client, payer):
        order = make_order(payer)
        assert admin_client.get(ORDERS + "add/").status_code == 403
        assert admin_client.get(f"{ORDERS}{order.pk}/delete/").status_code == 403

    def test_the_refund_action_opens_the_page_for_one_order_only(self, admin_client, payer):
        first, second = settled_order(payer), settled_order(payer)
        response = run_action(admin_client, ORDERS, "refund_selected", [first.pk], follow=False)
        assert response.status_code == 302 and response["Location"] == refund_url(first)
        response = run_action(admin_client, ORDERS, "refund_selected", [first.pk, second.pk])
        assert "退款请只选择一笔订单" in messages_of(response)


@pytest.mark.django_db
class TestPermissions:
    def test_a_viewer_sees_orders_but_no_actions(self, payer):
        order = make_order(payer)
        _, client = operator("viewer", "orders.view_rechargeorder")
        html = client.get(ORDERS).content.decode()
        assert order.out_trade_no in html
        assert "sync_selected" not in html and "close_selected" not in html and "refund_selected" not in html
        assert run_action(client, ORDERS, "close_selected", [order.pk]).status_code == 200
        assert RechargeOrder.objects.get().status == RechargeOrder.Status.PENDING

    def test_sync_permission_gives_sync_and_close_but_not_refund(self, payer):
        _, client = operator("syncer", "orders.view_rechargeorder", "orders.sync_rechargeorder")
        make_order(payer)
        html = client.get(ORDERS).content.decode()
        assert "sync_selected" in html and "close_selected" in html and "refund_selected" not in html

    def test_refund_permission_gives_the_refund_action_only(self, payer):
        _, client = operator("refunder", "orders.view_rechargeorder", "orders.refund_rechargeorder")
        make_order(payer)
        html = client.get(ORDERS).content.decode()
        assert "refund_selected" in html and "sync_selected" not in html

    def test_staff_without_order_permissions_are_refused(self, payer):
        order = settled_order(payer)
        _, client = operator("nobody")
        assert client.get(ORDERS).status_code == 403
        assert client.get(change_url(order)).status_code == 403


@pytest.mark.django_db(transaction=True)
class TestActionsAgainstTheSandbox:
    def test_sync_applies_what_wechat_says_and_counts(self, admin_client, sandbox_url):
        payer = payer_user("syncpayer")
        paid_there = placed_at_sandbox(payer, "10.00")
        pay_at_sandbox(paid_there)
        still_pending = placed_at_sandbox(payer, "20.00")
        already = paid_at_sandbox(payer, "30.00")
        response = run_action(admin_client, ORDERS, "sync_selected", [paid_there.pk, still_pending.pk, already.pk])
        said = messages_of(response)
        assert said[0].startswith("已向微信查询 2 笔待支付订单：") and "已支付 1 笔" in said[0] and "仍待支付 1 笔" in said[0]
        assert "跳过 1 笔订单：非待支付订单无需同步" in said
        paid_there.refresh_from_db()
        payer.refresh_from_db()
        assert paid_there.status == RechargeOrder.Status.PAID and payer.balance == 4000

    def test_a_wechat_error_during_sync_is_shown_with_its_code(self, admin_client, sandbox_url):
        order = placed_at_sandbox(payer_user("errpayer"), "10.00")
        Fault.objects.create(out_trade_no=order.out_trade_no, systemerror_endpoints="orderquery")
        said = messages_of(run_action(admin_client, ORDERS, "sync_selected", [order.pk]))
        code = wechat_code("SYSTEMERROR", "SYSTEM_ERROR")
        assert any(f"订单 {order.out_trade_no} 向微信查询失败：{code}" in m for m in said)
        assert "已向微信查询 1 笔待支付订单：查询失败 1 笔" in said
        assert RechargeOrder.objects.get(pk=order.pk).status == RechargeOrder.Status.PENDING

    def test_close_closes_pending_orders_at_wechat_and_skips_others(self, admin_client, sandbox_url):
        payer = payer_user("closer")
        pending = placed_at_sandbox(payer, "10.00")
        paid = paid_at_sandbox(payer, "20.00")
        asked = run_action(admin_client, ORDERS, "close_selected", [pending.pk, paid.pk])
        assert "errornote" not in asked.content.decode() and 'data-testid="confirm-action"' in asked.content.decode()
        assert RechargeOrder.objects.get(pk=pending.pk).status == RechargeOrder.Status.PENDING  # nothing yet
        no_reason = run_action(admin_client, ORDERS, "close_selected", [pending.pk, paid.pk], confirm="yes", reason=" ")
        assert "请填写原因" in no_reason.content.decode()
        assert RechargeOrder.objects.get(pk=pending.pk).status == RechargeOrder.Status.PENDING
        said = messages_of(
            run_action(admin_client, ORDERS, "close_selected", [pending.pk, paid.pk], confirm="yes", reason="用户放弃支付")
        )
        assert "关闭订单 1 笔待支付订单：已关闭 1 笔" in said
        assert "跳过 1 笔订单：只有待支付的订单可以关闭" in said
        assert RechargeOrder.objects.get(pk=pending.pk).status == RechargeOrder.Status.CLOSED
        assert Trade.objects.get(out_trade_no=pending.out_trade_no).state == Trade.CLOSED
        assert RechargeOrder.objects.get(pk=paid.pk).status == RechargeOrder.Status.PAID

    def test_closing_an_order_paid_at_wechat_credits_it_instead(self, admin_client, sandbox_url):
        payer = payer_user("latepayer")
        order = placed_at_sandbox(payer, "10.00")
        pay_at_sandbox(order)
        said = messages_of(run_action(admin_client, ORDERS, "close_selected", [order.pk], confirm="yes", reason="核对"))
        assert "关闭订单 1 笔待支付订单：微信已支付，已同步入账 1 笔" in said
        payer.refresh_from_db()
        assert RechargeOrder.objects.get(pk=order.pk).status == RechargeOrder.Status.PAID and payer.balance == 1000

    def test_an_operator_with_the_sync_permission_syncs(self, sandbox_url):
        order = placed_at_sandbox(payer_user("oppayer"), "10.00")
        pay_at_sandbox(order)
        _, client = operator("syncer", "orders.view_rechargeorder", "orders.sync_rechargeorder")
        run_action(client, ORDERS, "sync_selected", [order.pk])
        assert RechargeOrder.objects.get(pk=order.pk).status == RechargeOrder.Status.PAID

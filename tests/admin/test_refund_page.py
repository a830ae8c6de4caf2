"""The refund page (admin/orders/rechargeorder/<pk>/refund/): what it shows, what it refuses
(with the operator's message and nothing made), and a refund through the sandbox."""

from __future__ import annotations

import time

import pytest

from orders.models import LedgerEntry, RechargeOrder, Refund
from payments import services
from tests.admin import (
    change_url,
    messages_of,
    operator,
    paid_at_sandbox,
    payer_user,
    refund_form,
    refund_url,
    settled_order,
)
from tests.factories import make_order


@pytest.fixture
def payer(db):
    return payer_user()


def post(client, order, **values):
    form = refund_form(client, order)
    form.update({"reason": "用户申请退款", **values})
    return client.post(refund_url(order), form)


def assert_refused(response, message: str):
    assert response.status_code == 200
    assert message in response.content.decode()
    assert b'class="errornote"' in response.content
    assert not Refund.objects.exists()
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).exists()


@pytest.mark.django_db
class TestWhatItShowsAndRefuses:
    def test_it_shows_the_order_what_is_left_the_balance_and_defaults_to_what_is_left(self, admin_client, payer):
        order = settled_order(payer, 1000)
        html = admin_client.get(refund_url(order)).content.decode()
        assert order.out_trade_no in html and "¥10.00" in html and "可退金额" in html and "用户当前余额" in html
        assert 'name="amount" value="10.00"' in html
        assert 'name="_save"' not in html and "确认退款" in html
        assert 'href="/admin/"' in html and "退款" in html  # the admin's own frame and breadcrumbs

    def test_what_was_spent_is_not_offered_and_the_computation_is_shown(self, admin_client, payer):
        order = settled_order(payer, 1000)
        LedgerEntry.adjust(payer.pk, -800, "测试：余额已消费", None)
        html = admin_client.get(refund_url(order)).content.decode()
        assert 'name="amount" value="2.00"' in html
        assert 'data-testid="refundable">¥2.00<' in html and 'data-testid="terms_paid">¥10.00<' in html
        assert 'data-testid="terms_consumed">¥8.00（本金 ¥8.00，赠送 ¥0.00）<' in html

    def test_money_held_by_a_refund_under_way_is_shown_and_not_offered_again(self, admin_client, payer):
        order = settled_order(payer, 1000)
        order.start_refund(300, "第一次退款")
        html = admin_client.get(refund_url(order)).content.decode()
        assert 'data-testid="in_progress">¥3.00<' in html and 'data-testid="refundable">¥7.00<' in html
        assert 'name="amount" value="7.00"' in html and "第一次退款" in html and "退款中" in html

    def test_each_get_makes_a_new_refund_number(self, admin_client, payer):
        order = settled_order(payer)
        first, second = refund_form(admin_client, order), refund_form(admin_client, order)
        assert first["out_refund_no"] != second["out_refund_no"]
        assert first["out_refund_no"].startswith("RF") and len(first["out_refund_no"]) == 28

    def test_it_refuses_more_than_is_left(self, admin_client, payer):
        assert_refused(post(admin_client, settled_order(payer, 1000), amount="10.01"), "退款金额超过可退金额 ¥10.00")

    def test_it_refuses_more_than_was_left_unspent(self, admin_client, payer):
        order = settled_order(payer, 1000)
        LedgerEntry.adjust(payer.pk, -800, "测试：余额已消费", None)
        assert_refused(post(admin_client, order, amount="5.00"), "退款金额超过可退金额 ¥2.00（未消费的本金）")
        payer.refresh_from_db()
        assert payer.balance == 200

    def test_it_refuses_zero(self, admin_client, payer):
        assert_refused(post(admin_client, settled_order(payer), amount="0"), "退款金额必须大于 0")

    @pytest.mark.parametrize("amount", ["-5", "abc", "", "5.001", "１０", "1e3", "5,00"])
    def test_it_refuses_what_is_not_an_amount(self, admin_client, payer, amount):
        assert_refused(post(admin_client, settled_order(payer), amount=amount), "请输入正确的金额（元，最多两位小数）")

    def test_it_needs_a_reason(self, admin_client, payer):
        assert_refused(post(admin_client, settled_order(payer), amount="5", reason="   "), "请填写退款原因")

    @pytest.mark.parametrize("status", [RechargeOrder.Status.PENDING, RechargeOrder.Status.CLOSED])
    def test_it_refuses_an_order_that_was_not_paid(self, admin_client, payer, status):
        order = make_order(payer, amount=1000, status=status)
        LedgerEntry.adjust(payer.pk, 1000, "测试：有余额", None)
        html = admin_client.get(refund_url(order)).content.decode()
        assert 'name="amount" value="0.00"' in html  # nothing is refundable
        label = order.get_status_display()
        assert_refused(post(admin_client, order, amount="5"), f"订单{label}，只有已支付的订单可以退款")

    def test_it_refuses_a_51st_refund(self, admin_client, payer):
        order = settled_order(payer, 10000)
        for n in range(RechargeOrder.MAX_REFUNDS):
            Refund.objects.create(order=order, out_refund_no=f"RF{n:026d}", amount=1, reason="x", status=Refund.Status.FAILED)
        response = post(admin_client, order, amount="1")
        assert response.status_code == 200 and "每笔订单最多退款 50 次" in response.content.decode()
        assert Refund.objects.count() == RechargeOrder.MAX_REFUNDS

    def test_a_forged_refund_number_is_refused_and_replaced(self, admin_client, payer):
        order = settled_order(payer)
        response = admin_client.post(refund_url(order), {"amount": "5", "reason": "r", "out_refund_no": "RF1; DROP"})
        html = response.content.decode()
        assert response.status_code == 200 and "退款申请已失效，请核对后重新提交" in html
        assert "RF1; DROP" not in html and not Refund.objects.exists()

    def test_an_operator_without_the_refund_permission_cannot_open_it(self, payer):
        order = settled_order(payer)
        _, client = operator("viewer", "orders.view_rechargeorder", "orders.sync_rechargeorder")
        assert client.get(refund_url(order)).status_code == 403
        assert client.post(refund_url(order), {"amount": "5", "reason": "r"}).status_code == 403
        assert "refundlink" not in client.get(change_url(order)).content.decode()

    def test_anonymous_visitors_are_sent_to_the_admin_login(self, client, payer):
        response = client.get(refund_url(settled_order(payer)))
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_an_unknown_order_is_404(self, admin_client):
        assert admin_client.get("/admin/orders/rechargeorder/999999/refund/").status_code == 404


@pytest.mark.django_db(transaction=True)
class TestRefundingThroughTheSandbox:
    def test_it_refunds_part_of_an_order_and_the_refund_settles(self, admin_client, admin_user, sandbox_url):
        payer = payer_user("buyer")
        order = paid_at_sandbox(payer, "10.00")
        response = post(admin_client, order, amount="5", reason="用户多充了")
        assert response.status_code == 302 and response["Location"] == change_url(order)
        refund = Refund.objects.get()
        assert (refund.amount, refund.status, refund.requested_by, refund.reason) == (
            500,
            Refund.Status.PROCESSING,
            admin_user,
            "用户多充了",
        )
        assert refund.accepted and refund.refund_id and not refund.last_error
        page = admin_client.get(response["Location"])
        assert f"已提交退款 {refund.out_refund_no}：¥5.00，状态：退款中" in messages_of(page)
        payer.refresh_from_db()
        assert payer.balance == 500  # debited at once; the money cannot be spent while WeChat refunds it

        time.sleep(0.2)  # the sandbox settles 0.05 s later (SANDBOX_NOTIFY_TIME_SCALE=0.01)
        assert services.sync_refund(refund).status == Refund.Status.SUCCESS
        order.refresh_from_db()
        assert order.status == RechargeOrder.Status.REFUNDED and order.status_text == "部分退款"
        html = admin_client.get(change_url(order)).content.decode()
        assert "部分退款（已退 ¥5.00）" in html and refund.out_refund_no in html
        assert "refundlink" in html  # ¥5.00 is still refundable

    def test_submitting_the_same_form_twice_makes_one_refund(self, admin_client, sandbox_url):
        order = paid_at_sandbox(payer_user("twice"), "10.00")
        form = refund_form(admin_client, order)
        form.update(amount="3.00", reason="重复提交测试")
        assert admin_client.post(refund_url(order), form).status_code == 302
        again = admin_client.post(refund_url(order), form)
        assert again.status_code == 200 and "该退款申请已提交，请勿重复提交" in again.content.decode()
        assert Refund.objects.count() == 1
        assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.REFUND).count() == 1

    def test_an_operator_with_the_refund_permission_refunds(self, sandbox_url):
        order = paid_at_sandbox(payer_user("opbuyer"), "10.00")
        user, client = operator("cashier", "orders.view_rechargeorder", "orders.refund_rechargeorder")
        assert "refundlink" in client.get(change_url(order)).content.decode()
        assert post(client, order, amount="10").status_code == 302
        assert Refund.objects.get().requested_by == user

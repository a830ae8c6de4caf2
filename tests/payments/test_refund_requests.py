"""A member's refund request (申请退款, docs/stored-value.md#a-members-refund-request): the page
shows what is refundable of each recharge; a request is approved (each recharge refunded
through its own order) or declined with a note; a recent untouched recharge is approved by
itself; a recharge past WeChat's one-year window is paid by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from offers.models import Package
from orders.models import LedgerEntry, Lot, RechargeOrder, Refund
from payments import services
from payments.refund_requests import RefundRequest, RequestRefused
from payments.sweeper import run_pass
from tests.admin import operator
from tests.factories import make_order, make_user
from tests.helpers import NEEDS_ROW_LOCKS, race
from tests.payments.conftest import settle_sandbox_refunds
from wallet.models import Charge

pytestmark = pytest.mark.django_db(transaction=True)
PAGE = "/wallet/refund/"
PREPAY = "/payments/jsapi/prepay/"


def paid_with_package(client, user, price=10000, bonus=2000, **package_fields) -> RechargeOrder:
    """Buy a package through the recharge page's API and pay it at the sandbox."""
    from devtools.wechat_sandbox import services as sandbox_services
    from devtools.wechat_sandbox.models import Trade

    package = Package.objects.create(name=f"充{price // 100}送{bonus // 100}", price=price, bonus=bonus, **package_fields)
    client.force_login(user)
    body = client.post(PREPAY, {"package": package.pk}, content_type="application/json").json()
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    sandbox_services.pay(trade.prepay_id, trade.appid)
    order = services.sync_order(RechargeOrder.objects.get(out_trade_no=body["out_trade_no"]))
    assert order.status == RechargeOrder.Status.PAID
    return order


def aged(order: RechargeOrder, days: int) -> RechargeOrder:
    RechargeOrder.objects.filter(pk=order.pk).update(paid_at=timezone.now() - timedelta(days=days))
    order.refresh_from_db()
    return order


@pytest.fixture
def member(sandbox_url):
    return make_user("member", openid="oMember000000000000000000001")


@pytest.fixture
def member_client(member):
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def worked_example(member, member_client):
    """¥100 paid + ¥20 bonus, ¥60 spent, eight days ago (not self-service any more)."""
    order = aged(paid_with_package(member_client, member), 8)
    Charge.create(amount=6000, user_id=member.pk, store="一号店")
    return order


def ask(client, reason="不想用了"):
    return client.post(PAGE, {"reason": reason}, follow=True)


class TestThePage:
    def test_it_shows_what_is_refundable_per_recharge_and_in_total(self, member_client, worked_example):
        html = member_client.get(PAGE).content.decode()
        assert 'data-testid="part-amount">可退 ¥50.00<' in html and 'data-testid="part-bonus">扣回赠送 ¥10.00<' in html
        assert 'data-testid="refundable">¥50.00<' in html and 'data-testid="bonus-removed">¥10.00<' in html
        assert 'data-testid="balance-after">¥0.00<' in html and "已消费 ¥60.00" in html

    def test_the_statement_links_to_it(self, member_client, worked_example):
        assert 'href="/wallet/refund/"' in member_client.get("/wallet/statement/").content.decode()

    def test_with_nothing_refundable_it_says_so_and_refuses(self, member, member_client):
        LedgerEntry.adjust(member.pk, 500, "运营赠送", operator=None)
        assert 'data-testid="nothing-refundable"' in member_client.get(PAGE).content.decode()
        answer = ask(member_client)
        assert "没有可退款的充值" in answer.content.decode() and not RefundRequest.objects.exists()

    def test_a_reason_is_required(self, member_client, worked_example):
        answer = member_client.post(PAGE, {"reason": "  "})
        assert "请填写退款原因" in answer.content.decode() and not RefundRequest.objects.exists()

    def test_signed_out_it_asks_to_sign_in(self, client):
        assert client.get(PAGE).status_code == 302


class TestASubmittedRequest:
    def test_it_waits_for_an_operator_and_a_second_one_is_refused(self, member, member_client, worked_example):
        html = ask(member_client).content.decode()
        assert "退款申请已提交，请等待审核" in html and 'data-status="pending"' in html
        request = RefundRequest.objects.get()
        assert (request.amount, request.bonus, request.status) == (5000, 1000, "pending")
        assert "待审核的退款申请" in ask(member_client, "再来一次").content.decode()
        assert RefundRequest.objects.count() == 1
        member.refresh_from_db()
        assert member.balance == 6000  # nothing moves before a decision

    def test_it_holds_only_the_members_own_recharges(self, member, member_client, worked_example):
        other = make_user("other", openid="oOther0000000000000000000001")
        theirs = make_order(other, amount=3000)
        theirs.pay("4200000000000000000000000099", 3000, timezone.now())
        member_client.post(PAGE, {"reason": "x", "order": theirs.out_trade_no, "amount": "999"})
        assert list(RefundRequest.objects.get().lines.values_list("order", flat=True)) == [worked_example.pk]

    def test_an_operator_approves_it_and_the_worked_example_ends_at_zero(self, member, member_client, worked_example):
        ask(member_client)
        _, admin = operator("approver", "payments.view_refundrequest", "payments.decide_refundrequest")
        request = RefundRequest.objects.get()
        page = admin.get(f"/admin/payments/refundrequest/{request.pk}/change/").content.decode()
        assert 'data-testid="approve"' in page
        admin.post(f"/admin/payments/refundrequest/{request.pk}/approve/", {"note": "同意"})
        request.refresh_from_db()
        assert request.status == "approved" and request.decided_by.username == "approver"
        refund = Refund.objects.get()
        assert (refund.order, refund.amount, refund.accepted) == (worked_example, 5000, True)
        member.refresh_from_db()
        assert member.balance == 0
        assert settle_sandbox_refunds() == 1
        refund = services.sync_refund(refund)  # as the sweeper asks WeChat, when no notify came
        assert refund.status == Refund.Status.SUCCESS
        html = member_client.get(PAGE).content.decode()
        assert "退款 ¥50.00 · 退款成功" in html and "同意" in html

    def test_approval_refunds_what_is_left_now_each_through_its_own_order(self, member, member_client):
        first = aged(paid_with_package(member_client, member, 5000, 0), 30)
        second = aged(paid_with_package(member_client, member, 3000, 1000), 20)
        ask(member_client)
        Charge.create(amount=6000, user_id=member.pk)  # all of the first, ¥10 of the second (¥7.50 paid)
        refunds = services.approve_refund_request(RefundRequest.objects.get(), None)
        assert [(r.order, r.amount) for r in refunds] == [(second, 2250)]
        request = RefundRequest.objects.get()
        first_line = request.lines.get(order=first)
        assert first_line.refund is None and first_line.note == "已全部消费，没有可退的金额"
        assert Lot.objects.get(order=second).bonus_left == 0

    def test_a_decline_needs_a_note_and_the_member_sees_it(self, member, member_client, worked_example):
        ask(member_client)
        _, admin = operator("decider", "payments.view_refundrequest", "payments.decide_refundrequest")
        request = RefundRequest.objects.get()
        blank = admin.post(f"/admin/payments/refundrequest/{request.pk}/decline/", {"note": ""})
        assert "拒绝时请填写说明" in blank.content.decode()
        admin.post(f"/admin/payments/refundrequest/{request.pk}/decline/", {"note": "活动商品不支持退款"})
        request.refresh_from_db()
        assert request.status == "declined" and not Refund.objects.exists()
        assert "活动商品不支持退款" in member_client.get(PAGE).content.decode()
        with pytest.raises(RequestRefused, match="已处理"):
            request.approve(None)

    def test_an_operator_without_the_permission_cannot_decide(self, member_client, worked_example):
        ask(member_client)
        _, viewer = operator("viewer", "payments.view_refundrequest")
        request = RefundRequest.objects.get()
        assert 'data-testid="approve"' not in viewer.get(f"/admin/payments/refundrequest/{request.pk}/change/").content.decode()
        assert viewer.post(f"/admin/payments/refundrequest/{request.pk}/approve/", {"note": ""}).status_code == 403
        assert RefundRequest.objects.get().status == "pending"

    def test_the_start_page_counts_the_requests_waiting(self, member_client, worked_example):
        ask(member_client)
        _, admin = operator("boss", "payments.view_refundrequest")
        html = admin.get("/admin/").content.decode()
        assert 'data-testid="refund-requests-waiting"' in html and "?status__exact=pending" in html


class TestSelfService:
    def test_a_recent_untouched_recharge_is_approved_and_sent_by_itself(self, member, member_client):
        order = paid_with_package(member_client, member)
        html = ask(member_client).content.decode()
        assert "退款申请已自动通过" in html
        request = RefundRequest.objects.get()
        assert request.status == "approved" and request.auto_approved and request.decided_by is None
        refund = Refund.objects.get()
        assert (refund.order, refund.amount, refund.accepted) == (order, 10000, True)
        member.refresh_from_db()
        assert member.balance == 0  # the ¥20 bonus went with it

    def test_a_touched_or_older_recharge_waits_for_an_operator(self, member, member_client):
        paid_with_package(member_client, member)
        Charge.create(amount=1, user_id=member.pk)
        ask(member_client)
        assert RefundRequest.objects.get().status == "pending"

    def test_older_than_the_setting_waits(self, member, member_client, settings):
        aged(paid_with_package(member_client, member), settings.REFUND_SELF_SERVICE_DAYS + 1)
        ask(member_client)
        assert RefundRequest.objects.get().status == "pending"

    def test_the_setting_at_zero_turns_it_off(self, member, member_client, settings):
        settings.REFUND_SELF_SERVICE_DAYS = 0
        paid_with_package(member_client, member)
        ask(member_client)
        assert RefundRequest.objects.get().status == "pending"


class TestPastWeChatsWindow:
    def test_a_recharge_older_than_a_year_is_refunded_by_hand_and_never_sent(self, member, member_client):
        order = aged(paid_with_package(member_client, member, 5000, 0), 400)
        html = member_client.get(PAGE).content.decode()
        assert "超过一年，将线下退款" in html
        ask(member_client)
        refunds = services.approve_refund_request(RefundRequest.objects.get(), None)
        refund = refunds[0]
        assert (refund.order, refund.manual, refund.status, refund.accepted) == (order, True, Refund.Status.MANUAL, False)
        run_pass()
        refund.refresh_from_db()
        assert refund.status == Refund.Status.MANUAL and not refund.accepted  # the sweeper leaves it alone
        user, admin = operator("cashier", "orders.view_refund", "orders.refund_rechargeorder")
        assert 'data-testid="payout"' in admin.get(f"/admin/orders/refund/{refund.pk}/change/").content.decode()
        admin.post(f"/admin/orders/refund/{refund.pk}/payout/", {"payout": "银行转账，工行尾号 1234"})
        refund.refresh_from_db()
        order.refresh_from_db()
        assert (refund.status, refund.payout, refund.paid_out_by) == (Refund.Status.SUCCESS, "银行转账，工行尾号 1234", user)
        assert order.refunded_amount == 5000
        member.refresh_from_db()
        assert member.balance == 0


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_two_operators_approving_at_once_refund_once(member, member_client, worked_example):
    ask(member_client)
    request = RefundRequest.objects.get()
    results = race([lambda: services.approve_refund_request(RefundRequest.objects.get(pk=request.pk), None)] * 2)
    assert sorted(type(r).__name__ for r in results) == ["RequestRefused", "list"]
    assert Refund.objects.count() == 1


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_a_spend_racing_an_approval_never_refunds_what_was_spent(member, member_client, worked_example):
    ask(member_client)
    request = RefundRequest.objects.get()
    results = race(
        [
            lambda: services.approve_refund_request(RefundRequest.objects.get(pk=request.pk), None),
            lambda: Charge.create(amount=3000, user_id=member.pk),
        ]
    )
    lot = Lot.objects.get(order=worked_example)
    refunded = sum(r.amount for r in Refund.objects.all())
    spent = sum(c.amount for c in Charge.objects.all())
    assert lot.paid_left == 0 and lot.bonus_left == 0
    # Either the refund came first (¥50 refunded, the spend refused) or the spend did (¥25 left to refund).
    assert (refunded, spent) in [(5000, 6000), (2500, 9000)], results


def test_a_manual_payout_is_recorded_once(member, member_client):
    aged(paid_with_package(member_client, member, 5000, 0), 400)
    ask(member_client)
    [refund] = services.approve_refund_request(RefundRequest.objects.get(), None)
    assert refund.record_payout(None, "现金，经办人 张三") == "applied"
    assert refund.record_payout(None, "银行转账") == "duplicate"
    refund.refresh_from_db()
    assert refund.payout == "现金，经办人 张三" and refund.order.refunded_amount == 5000


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_approving_a_request_of_two_recharges_while_one_is_refunded_by_an_operator_never_deadlocks(member, member_client):
    from orders.models import RefundRefused

    for n in range(3):
        first = aged(paid_with_package(member_client, member, 5000, 0), 30)
        second = aged(paid_with_package(member_client, member, 3000, 0), 20)
        ask(member_client, f"第 {n} 次")
        request = RefundRequest.objects.get(status="pending")
        results = race(
            [
                lambda r=request: services.approve_refund_request(RefundRequest.objects.get(pk=r.pk), None),
                lambda o=second: o.start_refund(3000, "运营退款"),
            ]
        )
        # Both end cleanly: one of them refunds the second recharge, the other finds nothing left of it.
        assert all(isinstance(r, (list, Refund, RefundRefused)) for r in results), results
        assert sum(Refund.objects.filter(order=second).values_list("amount", flat=True)) == 3000
        assert sum(Refund.objects.filter(order=first).values_list("amount", flat=True)) == 5000

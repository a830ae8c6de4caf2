"""Stored value by the rules (docs/stored-value.md): each paid recharge is a lot of paid money
and bonus; spends take from the oldest lot, paid and bonus pro rata; a refund returns the
lot's unspent paid money and removes its unspent bonus; a failed refund gives both back."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from orders.allocation import LotState, bonus_share, consume, give_back, take_from
from orders.models import APPLIED, DUPLICATE, LedgerEntry, Lot, RechargeOrder, Refund, RefundRefused
from tests.factories import make_order, make_user
from tests.helpers import NEEDS_ROW_LOCKS, race
from wallet.models import Charge, ChargeError
from wxproto.beijing import BEIJING

_ids = itertools.count(1)


def paid(user, amount: int, bonus: int = 0, **fields) -> RechargeOrder:
    order = make_order(user, amount=amount, bonus=bonus, **fields)
    order.pay(f"4200000000{next(_ids):022d}", amount, timezone.now())
    order.refresh_from_db()
    return order


def rows(user) -> list[tuple[str, int]]:
    return [(e.get_kind_display(), e.amount) for e in LedgerEntry.objects.filter(user=user).order_by("pk")]


def left(order: RechargeOrder) -> tuple[int, int]:
    lot = Lot.objects.get(order=order)
    return lot.paid_left, lot.bonus_left


def balance(user) -> int:
    user.refresh_from_db()
    return user.balance


@pytest.fixture
def member(db):
    return make_user("member", openid="oMember")


class TestTheWorkedExample:
    """¥100 paid + ¥20 bonus, ¥60 spent → refundable ¥50.00, bonus removed ¥10.00, balance after ¥0.00."""

    def test_the_recharge_credits_paid_money_and_bonus_as_two_rows(self, member):
        order = paid(member, 10000, bonus=2000)
        assert rows(member) == [("充值", 10000), ("赠送", 2000)]
        assert balance(member) == 12000 and left(order) == (10000, 2000)

    def test_a_spend_takes_paid_and_bonus_in_the_lots_proportion(self, member):
        order = paid(member, 10000, bonus=2000)
        Charge.create(amount=6000, user_id=member.pk)
        assert left(order) == (5000, 1000)  # ¥60 = ¥50 paid + ¥10 bonus (100 : 20)
        terms = order.refund_terms()
        assert (terms.consumed_paid, terms.consumed_bonus, terms.refundable, terms.bonus_left) == (5000, 1000, 5000, 1000)

    def test_the_refund_returns_the_unspent_paid_money_and_removes_the_unspent_bonus(self, member):
        order = paid(member, 10000, bonus=2000)
        Charge.create(amount=6000, user_id=member.pk)
        assert order.refundable_amount() == 5000
        refund = order.start_refund(5000, "用户申请")
        assert rows(member)[-2:] == [("退款", -5000), ("赠送扣回", -1000)]
        assert balance(member) == 0 and left(order) == (0, 0)
        assert refund.settle(Refund.Status.SUCCESS) == APPLIED
        order.refresh_from_db()
        assert order.refunded_amount == 5000 and order.status_text == "部分退款"

    def test_nothing_more_can_be_refunded_afterwards(self, member):
        order = paid(member, 10000, bonus=2000)
        Charge.create(amount=6000, user_id=member.pk)
        order.start_refund(5000, "用户申请")
        assert order.refundable_amount() == 0
        with pytest.raises(RefundRefused, match="可退金额 ¥0.00"):
            order.start_refund(1, "再退一分")


class TestRefunds:
    @pytest.mark.parametrize("status", [Refund.Status.CLOSED, Refund.Status.FAILED])
    def test_a_refund_that_fails_gives_back_the_money_and_the_bonus_once(self, member, status):
        order = paid(member, 10000, bonus=2000)
        Charge.create(amount=6000, user_id=member.pk)
        refund = order.start_refund(5000, "用户申请")
        assert refund.settle(status) == APPLIED
        assert refund.settle(status) == DUPLICATE
        assert rows(member)[-2:] == [("退款退回", 5000), ("赠送退回", 1000)]
        assert balance(member) == 6000 and left(order) == (5000, 1000)
        assert order.refundable_amount() == 5000  # and it may be refunded again

    def test_a_partial_refund_removes_the_same_share_of_the_bonus(self, member):
        order = paid(member, 10000, bonus=2000)
        order.start_refund(2500, "退一部分")  # a quarter of the paid money left
        assert left(order) == (7500, 1500) and balance(member) == 9000
        order.start_refund(7500, "退其余")  # the rest of it: the rest of the bonus
        assert left(order) == (0, 0) and balance(member) == 0

    def test_a_refund_takes_only_its_own_recharges_money(self, member):
        first = paid(member, 5000)
        second = paid(member, 3000)
        Charge.create(amount=6000, user_id=member.pk)  # all of the first, ¥10 of the second
        assert left(first) == (0, 0) and left(second) == (2000, 0)
        assert first.refundable_amount() == 0 and second.refundable_amount() == 2000
        with pytest.raises(RefundRefused, match="可退金额 ¥0.00"):
            first.start_refund(100, "第一笔已用完")

    def test_an_operators_credit_is_bonus_and_is_never_sent_to_wechat(self, member):
        order = paid(member, 1000)
        LedgerEntry.adjust(member.pk, 500, "补偿", operator=None)
        Charge.create(amount=1000, user_id=member.pk)  # the recharge first: it is older
        assert left(order) == (0, 0) and order.refundable_amount() == 0
        assert Lot.objects.get(order=None).bonus_left == 500 and balance(member) == 500


class TestSpendsAndReversals:
    def test_spends_take_the_oldest_lot_first_then_the_next(self, member):
        older = paid(member, 10000, bonus=2000)
        newer = paid(member, 5000)
        charge = Charge.create(amount=15000, user_id=member.pk)
        assert left(older) == (0, 0) and left(newer) == (2000, 0)
        assert sorted(charge.entry.moves.values_list("lot__order", "paid", "bonus")) == sorted(
            [(older.pk, -10000, -2000), (newer.pk, -3000, 0)]
        )

    def test_a_reversal_gives_back_to_the_lots_it_took_from_newest_first(self, member):
        older = paid(member, 10000, bonus=2000)
        newer = paid(member, 5000)
        charge = Charge.create(amount=15000, user_id=member.pk)
        charge.reverse(3000, "退一部分")  # all that the newer lot gave
        assert left(older) == (0, 0) and left(newer) == (5000, 0)
        charge.reverse(6000, "再退")  # half of what the older one gave, in its proportion
        assert left(older) == (5000, 1000)
        charge.reverse(6000, "全部")
        assert left(older) == (10000, 2000) and balance(member) == 17000

    def test_money_given_back_to_a_refunded_lot_is_refundable_again(self, member):
        order = paid(member, 10000, bonus=2000)
        charge = Charge.create(amount=6000, user_id=member.pk)
        order.start_refund(5000, "用户申请")
        charge.reverse(6000, "门店撤销")
        assert left(order) == (5000, 1000) and order.refundable_amount() == 5000

    def test_many_small_spends_keep_the_lots_proportion(self, member):
        order = paid(member, 10000, bonus=2000)
        for _ in range(37):
            Charge.create(amount=7, user_id=member.pk)
        paid_left, bonus_left = left(order)
        # 259 fen spent: 215.8 paid and 43.2 bonus by the proportion; whole fen stay within one.
        assert paid_left + bonus_left == 12000 - 259
        assert abs(paid_left - (12000 - 259) * 10000 / 12000) < 1


class TestBonusExpiry:
    def test_the_bonus_expires_on_its_date_with_its_own_row_and_paid_money_stays(self, member):
        order = paid(member, 10000, bonus=2000, bonus_valid_days=30)
        lot = Lot.objects.get(order=order)
        # Valid through the 30th Beijing day after payment: it expires at the midnight after it.
        last_day = timezone.localtime(order.paid_at, BEIJING).date() + timedelta(days=30)
        assert timezone.localtime(lot.bonus_expires_at, BEIJING) == datetime.combine(
            last_day + timedelta(days=1), time.min, BEIJING
        )
        assert LedgerEntry.objects.get(kind=LedgerEntry.Kind.BONUS).reason == f"有效期至 {last_day.isoformat()}"
        Charge.create(amount=1200, user_id=member.pk)  # ¥10 paid + ¥2 bonus
        assert lot.expire_bonus() is None  # not yet
        with time_machine.travel(lot.bonus_expires_at + timedelta(seconds=1)):
            entry = lot.expire_bonus()
            assert lot.expire_bonus() is None  # once
        assert (entry.get_kind_display(), entry.amount) == ("赠送过期", -1800)
        assert left(order) == (9000, 0) and balance(member) == 9000
        Charge.create(amount=1000, user_id=member.pk)  # only paid money is left to take
        assert left(order) == (8000, 0)

    @pytest.mark.django_db(transaction=True)
    def test_the_expiry_job_expires_each_due_bonus_once_and_leaves_the_rest(self, member, capsys):
        due = paid(member, 10000, bonus=2000, bonus_valid_days=1)
        later = paid(member, 5000, bonus=500, bonus_valid_days=10)
        never = paid(member, 3000, bonus=300)
        with time_machine.travel(timezone.now() + timedelta(days=2)):
            call_command("expire_bonus")
            assert "赠送过期：1 笔，共 2000 分" in capsys.readouterr().out
            call_command("expire_bonus")
            assert capsys.readouterr().out == ""
        assert [left(o) for o in (due, later, never)] == [(10000, 0), (5000, 500), (3000, 300)]
        assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BONUS_EXPIRY).count() == 1

    def test_a_recharge_without_a_validity_never_expires(self, member):
        order = paid(member, 10000, bonus=2000)
        lot = Lot.objects.get(order=order)
        assert lot.bonus_expires_at is None
        with time_machine.travel(timezone.now() + timedelta(days=3650)):
            assert lot.expire_bonus() is None


class TestTheRulesArithmetic:
    def test_take_from_keeps_whole_fen_and_never_goes_below_zero(self):
        lot = LotState(1, paid=3, bonus=1, paid_left=3, bonus_left=1)
        taken = []
        while lot.left:
            p, b = take_from(lot, 1)
            lot.paid_left -= p
            lot.bonus_left -= b
            taken.append((p, b))
            assert lot.paid_left >= 0 and lot.bonus_left >= 0
        assert sum(p for p, _ in taken) == 3 and sum(b for _, b in taken) == 1

    def test_consume_refuses_more_than_the_lots_hold(self):
        with pytest.raises(ValueError):
            consume([LotState(1, 100, 0, 100, 0)], 101)

    def test_give_back_refuses_more_than_was_taken(self):
        taken = [(1, -50, -10)]
        assert give_back(taken, [], 60) == [(1, 50, 10)]
        with pytest.raises(ValueError):
            give_back(taken, [(1, 50, 10)], 1)

    def test_bonus_share_of_a_partial_refund_keeps_what_stays_in_proportion(self):
        lot = LotState(1, 10000, 2000, 3, 1)
        assert bonus_share(lot, 3) == 1 and bonus_share(lot, 1) == 1  # 2 paid keep 0.4 of a fen (5 : 1): none
        assert bonus_share(LotState(1, 2, 1, 2, 1), 1) == 0  # 1 paid keeps half a fen: rounded up, 1

    def test_many_one_fen_refunds_remove_what_one_refund_would(self):
        lot = LotState(1, 10000, 2000, 10000, 2000)
        removed = 0
        for _ in range(4999):
            share = bonus_share(lot, 1)
            lot.paid_left -= 1
            lot.bonus_left -= share
            removed += share
        assert abs(removed - 4999 * 2000 / 10000) <= 1  # 999.8 by the proportion; whole fen within one


def test_operators_see_each_lot_and_its_moves_in_the_admin(admin_client, member):
    order = paid(member, 10000, bonus=2000, bonus_valid_days=30)
    Charge.create(amount=6000, user_id=member.pk)
    lot = Lot.objects.get(order=order)
    listing = admin_client.get("/admin/orders/lot/").content.decode()
    assert order.out_trade_no in listing and "¥50.00" in listing and "¥10.00" in listing
    page = admin_client.get(f"/admin/orders/lot/{lot.pk}/change/").content.decode()
    for shown in ("充值", "赠送", "消费", "¥100.00", "¥20.00", "-¥50.00", "-¥10.00"):
        assert shown in page, shown


def test_the_statement_says_when_the_bonus_left_expires_before_it_does(client, member):
    order = paid(member, 10000, bonus=2000, bonus_valid_days=30)
    client.force_login(member)
    html = client.get("/wallet/statement/").content.decode()
    expires = (timezone.localtime(Lot.objects.get(order=order).bonus_expires_at, BEIJING) - timedelta(days=1)).strftime(
        "%Y-%m-%d"
    )
    assert f"赠送 · 有效期至 {expires}" in html
    assert f'data-testid="bonus-expiry">赠送金额 ¥20.00 有效期至 {expires}，' in html


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
@pytest.mark.django_db(transaction=True)
def test_a_spend_racing_a_refund_of_the_same_lot_never_takes_the_same_money_twice():
    for n in range(5):
        member = make_user(f"racer{n}", openid=f"oRacer{n}")
        order = paid(member, 10000, bonus=2000)
        Charge.create(amount=6000, user_id=member.pk)  # the lot: ¥50 paid + ¥10 bonus left
        refund, spend = race(
            [lambda o=order: o.start_refund(5000, "用户申请"), lambda m=member: Charge.create(amount=3000, user_id=m.pk)]
        )
        lot = Lot.objects.get(order=order)
        if isinstance(refund, Refund):  # the refund first: nothing left to spend
            assert isinstance(spend, ChargeError) and spend.code == "insufficient_balance"
            assert (lot.paid_left, lot.bonus_left) == (0, 0)
        else:  # the spend first (¥25 + ¥5): the refund of ¥50 is refused, never shrunk or negative
            assert isinstance(spend, Charge) and isinstance(refund, RefundRefused), (refund, spend)
            assert (lot.paid_left, lot.bonus_left) == (2500, 500) and not Refund.objects.filter(order=order).exists()

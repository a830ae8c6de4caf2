"""Finding orders as operators type: the last (or first) digits of an order number, part of a
user name; ranges of paid time, created time and amount; the filtered list's count and total;
bad input said, not a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import RechargeOrder
from tests.admin import operator, settled_order
from tests.factories import make_order, make_user

pytestmark = pytest.mark.django_db
LIST = "/admin/orders/rechargeorder/"


@pytest.fixture
def clerk():
    return operator("clerk", "orders.view_rechargeorder")[1]


def shown(client, **params) -> tuple[set[str], str]:
    page = client.get(LIST, params).content.decode()
    numbers = {o.out_trade_no for o in RechargeOrder.objects.all() if f">{o.out_trade_no}<" in page}
    return numbers, page


def test_the_last_or_first_six_digits_find_an_order(clerk):
    wanted = settled_order(make_user("zhang-wei"), 1000)
    other = settled_order(make_user("li-na"), 2000)
    assert shown(clerk, q=wanted.out_trade_no[-6:])[0] == {wanted.out_trade_no}
    assert shown(clerk, q=wanted.out_trade_no)[0] == {wanted.out_trade_no}
    assert other.out_trade_no in shown(clerk, q=other.out_trade_no[:8])[0]


def test_fewer_digits_say_why_they_find_nothing(clerk):
    settled_order(make_user("wang"), 1000)
    numbers, page = shown(clerk, q="12345")
    assert numbers == set() and "至少输入 6 位数字" in page


def test_part_of_a_user_name_finds_their_orders(clerk):
    mine = settled_order(make_user("chen-xiaoming"), 1000)
    settled_order(make_user("zhao"), 1000)
    assert shown(clerk, q="xiaoming")[0] == {mine.out_trade_no}


def test_ranges_of_paid_time_created_time_and_amount(clerk):
    user = make_user("range")
    old = settled_order(user, 1000)
    RechargeOrder.objects.filter(pk=old.pk).update(
        paid_at=timezone.now() - timedelta(days=10), created_at=timezone.now() - timedelta(days=10)
    )
    recent = settled_order(user, 5000)
    pending = make_order(user, 2000)
    today = timezone.localdate().isoformat()
    assert shown(clerk, paid_at__from=today)[0] == {recent.out_trade_no}
    assert shown(clerk, created_at__to=(timezone.localdate() - timedelta(days=5)).isoformat())[0] == {old.out_trade_no}
    assert shown(clerk, amount__from="15", amount__to="50")[0] == {recent.out_trade_no, pending.out_trade_no}
    assert shown(clerk, amount__to="20.00")[0] == {old.out_trade_no, pending.out_trade_no}


def test_the_filtered_list_shows_its_count_and_total(clerk):
    user = make_user("totals")
    settled_order(user, 1000)
    settled_order(user, 2050)
    make_order(user, 99900)
    page = shown(clerk, status__exact="1")[1]
    assert "共 <strong>2</strong> 笔，合计 <strong>¥30.50</strong>" in page


@pytest.mark.parametrize("params", [{"paid_at__from": "2026-13-45"}, {"amount__from": "十元"}, {"created_at__to": "昨天"}])
def test_a_bad_range_is_said_and_the_list_still_shows(clerk, params):
    settled_order(make_user("bad"), 1000)
    response = clerk.get(LIST, params)
    assert response.status_code == 200
    assert "无效" in response.content.decode()


def test_the_range_form_keeps_the_other_filters(clerk):
    settled_order(make_user("keep"), 1000)
    page = shown(clerk, status__exact="1", q="keep")[1]
    form = page[page.index('data-testid="range-paid_at"') :][:1500]
    assert 'name="status__exact" value="1"' in form and 'name="q" value="keep"' in form

"""The admin start page: recharges and refunds of today and the last 30 Beijing days, pending
orders, open incidents and a server-drawn chart, from a handful of queries."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings

from orders.models import RechargeOrder, Refund
from payments.dashboard import dashboard
from payments.models import Incident
from tests.admin import operator, payer_user
from tests.factories import make_order

pytestmark = pytest.mark.django_db
BEIJING = ZoneInfo("Asia/Shanghai")
# 01:00 in Beijing is still the previous day in UTC: days must be Beijing's.
NOW = datetime(2026, 11, 24, 1, 0, tzinfo=BEIJING)


def paid(user, amount: int, at: datetime) -> RechargeOrder:
    order = make_order(user, amount=amount, created_at=at - timedelta(minutes=1))
    return order.pay(f"42{order.out_trade_no}", amount, at).order


def refunded(order: RechargeOrder, amount: int, at: datetime) -> None:
    order.start_refund(amount, "测试退款").settle(Refund.Status.SUCCESS, settled_at=at)


@pytest.fixture
def books(db):
    """Money on either side of the day and 30-day boundaries."""
    user = payer_user("books")
    paid(user, 1000, NOW - timedelta(minutes=30))  # today 00:30 Beijing (yesterday in UTC)
    paid(user, 2000, NOW.replace(hour=0, minute=0))  # today 00:00 exactly
    yesterday = paid(user, 5000, NOW - timedelta(hours=2))  # yesterday 23:00
    paid(user, 700, NOW - timedelta(days=29, hours=1))  # 29 days ago 00:00: the first day shown
    paid(user, 900, NOW - timedelta(days=29, hours=2))  # 30 days ago 23:00: outside
    refunded(yesterday, 1500, NOW - timedelta(minutes=10))  # settled today
    refunded(yesterday, 500, NOW - timedelta(days=3))
    yesterday.start_refund(100, "处理中，不算")
    make_order(user, amount=300)
    make_order(user, amount=400)
    Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "开着的", order=yesterday)
    Incident.report(Incident.Kind.AMOUNT_MISMATCH, "处理了", order=yesterday).resolve(None)
    return user


def test_the_figures_count_beijing_days(books, django_assert_num_queries):
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(4):
        d = dashboard()
    assert (d["paid_today"].count, d["paid_today"].total) == (2, 3000)
    assert (d["paid_month"].count, d["paid_month"].total) == (4, 8700)
    assert (d["refunded_today"].count, d["refunded_today"].total) == (1, 1500)
    assert (d["refunded_month"].count, d["refunded_month"].total) == (2, 2000)
    assert d["pending"] == 2 and d["open_incidents"] == 1
    assert len(d["bars"]) == 30 and d["bars"][-1].day.day == NOW.date() and d["bars"][0].day.total == 700
    assert d["bars"][-2].height == 100  # the best day fills the chart
    assert d["bars"][-1].height == 60 and d["bars"][5].height == 0


def test_the_start_page_shows_them_above_the_app_list(admin_client, books):
    with time_machine.travel(NOW, tick=False):
        html = admin_client.get("/admin/").content.decode()
    assert html.index('data-testid="dashboard"') < html.index('class="app-orders')
    assert re.search(r'data-testid="paid-today">.*?¥30\.00.*?2 笔', html, re.S)
    assert re.search(r'data-testid="paid-30d">.*?¥87\.00.*?4 笔', html, re.S)
    assert re.search(r'data-testid="refunded-today">.*?¥15\.00.*?1 笔', html, re.S)
    assert re.search(r'data-testid="refunded-30d">.*?¥20\.00.*?2 笔', html, re.S)
    assert re.search(r'data-testid="pending">.*?>2<', html, re.S)
    assert 'href="/admin/payments/incident/?state=open"' in html
    assert re.search(r'data-testid="open-incidents">.*?>1<', html, re.S)
    assert html.count("<title>") == 31 and "2026-11-23：¥50.00（1 笔）" in html  # 30 bars and the page's own
    assert settings.OTP_TOTP_ISSUER in html and "css/admin.css" in html  # 余额充值 运营后台
    assert "<script" not in html.split('data-testid="dashboard"')[1].split("</svg>")[0]


def test_an_empty_site_shows_zeros(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'data-testid="paid-today">.*?¥0\.00.*?0 笔', html, re.S)
    assert 'class="wx-chart__bar' not in html


def test_staff_who_may_not_see_orders_do_not_see_the_money(books):
    _, client = operator("helpdesk", "accounts.view_user")
    html = client.get("/admin/").content.decode()
    assert 'data-testid="dashboard"' not in html and "¥30.00" not in html

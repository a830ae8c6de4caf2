"""预收资金 (reconciliation/liability.py and its admin page): what the business owes its users
day by day, paid and bonus apart, read from the lots' moves of the ledger rows that the real
verbs wrote (a paid recharge with its bonus, spends and a reversal, refunds settled and closed,
a bonus expired, operators' adjustments), checked against figures worked out by hand, against
the next day's opening and against the users' balances; the page, its chart, its CSV, its
permission and its handling of bad dates."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from django.db.models import Sum

from accounts.models import User
from orders.models import LedgerEntry, Lot, RechargeOrder, Refund
from reconciliation.liability import LINE_OF_KIND, LINES, Split, day_report, owed_now, series
from tests.admin import operator
from tests.factories import make_order, make_user
from wallet.models import Charge
from wxproto.beijing import BEIJING

pytestmark = pytest.mark.django_db

D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
PAGE = "/admin/reconciliation/billday/liability/"
CSV = "/admin/reconciliation/billday/liability.csv"
PERM = "reconciliation.view_liability"
_ids = itertools.count(1)


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A Beijing wall-clock moment."""
    return datetime.combine(day, time(hour, minute, second), tzinfo=BEIJING)


def travel(moment: datetime):
    return time_machine.travel(moment, tick=False)


def paid(user: User, amount: int, bonus: int = 0, **fields) -> RechargeOrder:
    """An order paid now (the clock's now), credited with its bonus as its notify would be."""
    order = make_order(user, amount=amount, bonus=bonus, **fields)
    order.pay(f"4200000000{next(_ids):022d}", amount, datetime.now(tz=BEIJING))
    order.refresh_from_db()
    return order


def balances() -> int:
    return User.objects.aggregate(total=Sum("balance"))["total"] or 0


@pytest.fixture
def books(db):
    """Two users' books over two Beijing days, through the site's own verbs. What each move
    does to the lots (orders/allocation.py) is worked out beside it; the tests' figures come
    from these comments, not from the code."""
    alice, bob = make_user("alice"), make_user("bob")
    ends, lots = {}, {}

    # -- day 1, 2026-03-02 ----------------------------------------------------------------------
    with travel(at(D1, 10)):
        # Alice pays ¥100 for ¥100 + ¥20 bonus: lot A1 = paid 10000, bonus 2000.
        recharge = paid(alice, 10000, bonus=2000)
    with travel(at(D1, 11)):
        # She spends ¥60 from A1 (12000 in it, paid:bonus 5:1); what stays (6000) keeps 5:1:
        # 5000 paid + 1000 bonus stay, so ¥50 paid and ¥10 bonus are consumed.
        spend = Charge.create(amount=6000, user_id=alice.pk)
    with travel(at(D1, 12)):
        # Bob pays ¥50 for ¥50 + ¥10 bonus valid for the day of payment only (0 days after it:
        # it runs out at the midnight after D1): lot B1 = 5000 + 1000.
        expiring = paid(bob, 5000, bonus=1000, bonus_valid_days=0)
    with travel(at(D1, 13)):
        # An operator credits Alice ¥5: a lot of its own, bonus only (not WeChat money): A2 = 0 + 500.
        LedgerEntry.adjust(alice.pk, 500, "补偿", operator=None)
    ends[D1], lots[D1] = balances(), owed_now()

    # -- day 2, 2026-03-03 ----------------------------------------------------------------------
    with travel(at(D2, 9)):
        # ¥30 of the ¥60 spend reversed: back to A1 in the proportion it was taken (5:1):
        # +2500 paid, +500 bonus. A1 = 7500 + 1500.
        spend.reverse(3000, "撤销一半")
    with travel(at(D2, 10)):
        # ¥40 refunded of Alice's recharge: -4000 paid from A1, and the same share of its bonus
        # removed: 1500 × 4000 / 7500 = 800. A1 = 3500 + 700. WeChat pays it at 10:30.
        done = recharge.start_refund(4000, "用户申请退款")
        done.accept(f"5030000000{next(_ids):022d}")
    with travel(at(D2, 10, 30)):
        done.settle(Refund.Status.SUCCESS)
    with travel(at(D2, 11)):
        # Bob spends ¥24 from B1 (6000 in it, 5:1); 3600 stays as 3000 + 600: -2000 paid, -400 bonus.
        Charge.create(amount=2400, user_id=bob.pk)
    with travel(at(D2, 13)):
        # Bob's bonus ran out at midnight: what is left of it (600) expires. B1 = 3000 + 0.
        Lot.objects.get(order=expiring).expire_bonus()
    with travel(at(D2, 14)):
        # ¥10 more refunded (-1000 paid, bonus 700 × 1000 / 3500 = -200), but WeChat closes the
        # refund at 15:00 and both come back: +1000 paid, +200 bonus. A1 = 3500 + 700 again.
        closed = recharge.start_refund(1000, "用户申请退款")
    with travel(at(D2, 15)):
        closed.settle(Refund.Status.CLOSED)
    with travel(at(D2, 16)):
        # An operator takes ¥3 off Alice: from her oldest lot, A1 (4200 in it, credited 5:1);
        # 3900 stays as 3250 + 650: -250 paid, -50 bonus. A1 = 3250 + 650.
        LedgerEntry.adjust(alice.pk, -300, "扣减", operator=None)
    ends[D2], lots[D2] = balances(), owed_now()
    return SimpleNamespace(alice=alice, bob=bob, ends=ends, lots=lots)


# -- the figures ----------------------------------------------------------------------------------


def test_a_day_with_every_kind_of_move_adds_up_to_the_figures_worked_out_by_hand(books):
    # Day 2 starts where day 1 ended: A1 5000 + 1000, A2 0 + 500, B1 5000 + 1000.
    report = day_report(D2)
    assert report.opening == Split(paid=10000, bonus=2500)
    assert report.lines == {
        "recharge": Split(0, 0),
        "bonus": Split(0, 0),
        # Alice's reversal +2500/+500, Bob's spend -2000/-400.
        "spend": Split(500, 100),
        # The refund paid -4000/-800; the closed one -1000/-200 and back +1000/+200.
        "refund": Split(-4000, -800),
        # Bob's bonus left, 600.
        "expiry": Split(0, -600),
        # The operator's -¥3, from A1 at 5:1.
        "adjustment": Split(-250, -50),
    }
    # 10000 + 500 - 4000 - 250 = 6250 paid; 2500 + 100 - 800 - 600 - 50 = 1150 bonus.
    assert report.closing == Split(paid=6250, bonus=1150)
    assert report.closing == Split(report.opening.paid + report.movement.paid, report.opening.bonus + report.movement.bonus)
    # What the lots hold at the day's end: A1 3250 + 650, A2 0 + 500, B1 3000 + 0; and the
    # users' balances: Alice 4400, Bob 3000.
    assert report.closing.total == books.ends[D2] == 7400
    assert report.closing == books.lots[D2]


def test_the_first_day_starts_from_nothing(books):
    report = day_report(D1)
    assert report.opening == Split(0, 0)
    assert report.lines == {
        # Alice's ¥100 and Bob's ¥50, paid through WeChat.
        "recharge": Split(15000, 0),
        # Their ¥20 and ¥10 bonus.
        "bonus": Split(0, 3000),
        # Alice's ¥60: ¥50 paid, ¥10 bonus.
        "spend": Split(-5000, -1000),
        "refund": Split(0, 0),
        "expiry": Split(0, 0),
        # The operator's ¥5 credit counts as bonus.
        "adjustment": Split(0, 500),
    }
    assert report.closing == Split(paid=10000, bonus=2500)
    # What the lots held that evening: A1 5000 + 1000, A2 0 + 500, B1 5000 + 1000.
    assert report.closing.total == books.ends[D1] == 12500
    assert report.closing == books.lots[D1]


def test_each_days_closing_is_the_next_days_opening(books):
    reports = series(D3, 5)
    assert [r.day for r in reports] == [D1 - timedelta(days=2), D1 - timedelta(days=1), D1, D2, D3]
    for before, after in itertools.pairwise(reports):
        assert before.closing == after.opening
        assert after.closing == after.opening + after.movement
    # Nothing moved on day 3: it ends as day 2 did.
    assert reports[-1].opening == reports[-1].closing == Split(6250, 1150)
    assert [r.closing.total for r in reports] == [0, 0, books.ends[D1], books.ends[D2], books.ends[D2]]


def test_a_series_costs_two_queries_however_many_days(books, django_assert_num_queries):
    with django_assert_num_queries(2):
        reports = series(D3, 90)
    assert len(reports) == 90 and reports[-1].day == D3 and reports[0].day == D3 - timedelta(days=89)
    assert reports[-3].closing == day_report(D1).closing


def test_days_are_beijing_days_not_utc_days():
    """07:59 in Beijing is the day before in UTC, and 00:00 is 16:00 the day before: each row
    counts on its Beijing day (on SQLite as on PostgreSQL)."""
    payer = make_user("early")
    with travel(at(D2, 7, 59)):
        paid(payer, 1000)
    with travel(at(D2, 23, 59, 59)):
        Charge.create(amount=100, user_id=payer.pk)
    with travel(at(D3, 0, 0)):
        Charge.create(amount=200, user_id=payer.pk)
    reports = {r.day: r for r in series(D3, 3)}
    assert reports[D1].closing == Split(0, 0)
    assert reports[D2].lines["recharge"] == Split(1000, 0) and reports[D2].lines["spend"] == Split(-100, 0)
    assert reports[D3].opening == Split(900, 0) and reports[D3].lines["spend"] == Split(-200, 0)
    assert day_report(D3).closing == Split(700, 0)


def test_every_ledger_kind_is_on_exactly_one_line():
    kinds = [kind for line in LINES for kind in line.kinds]
    assert sorted(kinds) == sorted(LedgerEntry.Kind.values) and len(kinds) == len(set(kinds))
    assert set(LINE_OF_KIND) == set(LedgerEntry.Kind.values)
    assert [line.label for line in LINES] == ["充值", "赠送", "消费", "退款", "赠送过期", "调整"]


# -- the page -------------------------------------------------------------------------------------


@pytest.fixture
def now():
    """Two days after day 2, early in the Beijing morning (still the day before in UTC)."""
    with travel(at(D3 + timedelta(days=1), 7)):
        yield


def row(html: str, key: str) -> list[str]:
    found = re.search(rf'data-testid="row-{key}">(.*?)</tr>', html, re.S)
    assert found, key
    return re.findall(r'<td class="num">([^<]*)</td>', found[1])


def test_the_page_shows_a_days_opening_lines_and_closing_paid_and_bonus_apart(books, now):
    _, viewer = operator("auditor", PERM)
    response = viewer.get(PAGE, {"date": "2026-03-03"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2026-03-03 预收资金" in html and "本金（用户实付）" in html
    assert row(html, "opening") == ["¥100.00", "¥25.00", "¥125.00"]
    assert row(html, "recharge") == ["¥0.00", "¥0.00", "¥0.00"]
    assert row(html, "spend") == ["+¥5.00", "+¥1.00", "+¥6.00"]
    assert row(html, "refund") == ["-¥40.00", "-¥8.00", "-¥48.00"]
    assert row(html, "expiry") == ["¥0.00", "-¥6.00", "-¥6.00"]
    assert row(html, "adjustment") == ["-¥2.50", "-¥0.50", "-¥3.00"]
    assert row(html, "movement") == ["-¥37.50", "-¥13.50", "-¥51.00"]
    assert row(html, "closing") == ["¥62.50", "¥11.50", "¥74.00"]


def test_the_page_shows_today_in_beijing_time_by_default(books, now):
    _, viewer = operator("auditor", PERM)
    html = viewer.get(PAGE).content.decode()
    # 07:00 in Beijing on 03-05 is still 03-04 in UTC.
    assert "2026-03-05 预收资金（今天，截至目前）" in html
    assert row(html, "opening") == row(html, "closing") == ["¥62.50", "¥11.50", "¥74.00"]


def test_the_chart_draws_90_days_of_what_was_owed_on_the_server(books, now):
    _, viewer = operator("auditor", PERM)
    html = viewer.get(PAGE, {"date": "2026-03-04"}).content.decode()
    start = html.index('data-testid="liability-chart"')
    chart = html[start : html.index("</svg>", html.index("<svg class=", start))]
    assert "2025-12-05 至 2026-03-04" in chart
    assert chart.count("<title>") == 90
    assert "<title>2026-03-03 期末：本金 ¥62.50，赠送 ¥11.50，合计 ¥74.00</title>" in chart
    assert "<title>2026-03-01 期末：本金 ¥0.00，赠送 ¥0.00，合计 ¥0.00</title>" in chart
    assert '<a href="?date=2026-03-02">' in chart and "最高 ¥125.00" in chart
    # 160 px for the highest, ¥125.00 on 03-02: ¥100.00 paid is 128 px with 32 px of bonus on
    # it; 03-03's ¥74.00 is 95 px (94.7), ¥62.50 paid 80 of them and bonus the 15 above.
    bars = {day: chart[chart.index(f"<title>{day}") :].split("</g>")[0] for day in ("2026-03-02", "2026-03-03")}
    assert re.search(r'y="32" width="[0-9.]+%" height="128" fill="#417690"', bars["2026-03-02"])
    assert re.search(r'y="0" width="[0-9.]+%" height="32" fill="#e0a100"', bars["2026-03-02"])
    assert re.search(r'y="80" width="[0-9.]+%" height="80" fill="#417690"', bars["2026-03-03"])
    assert re.search(r'y="65" width="[0-9.]+%" height="15" fill="#e0a100"', bars["2026-03-03"])
    # Inline SVG and nothing the site's Content-Security-Policy forbids.
    assert "<script" not in chart and " style=" not in chart
    assert "script-src 'self'" in viewer.get(PAGE).headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("2026-13-01", "日期 2026-13-01 不存在"),
        ("2026-02-30", "日期 2026-02-30 不存在"),
        ("03/03/2026", "格式不对：请按 年-月-日 填写，例如 2026-03-05"),
        ("<b>x</b>", "格式不对"),
        ("2026-03-06", "日期 2026-03-06 在未来（北京时间今天是 2026-03-05）"),
        ("1999-12-31", "太早"),
    ],
)
def test_a_bad_date_says_why_in_chinese(books, now, typed, says):
    _, viewer = operator("auditor", PERM)
    response = viewer.get(PAGE, {"date": typed})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<p class="errornote" data-testid="error">[^<]*' + re.escape(says.replace("<", "&lt;")), html)
    assert 'data-testid="date-form"' in html and 'data-testid="report"' not in html
    assert "<b>x</b>" not in html


def test_only_those_with_the_permission_see_it(books, now, client):
    _, reconciler = operator("reconciler", "reconciliation.view_billday", "reconciliation.run_billday")
    assert reconciler.get(PAGE).status_code == 403
    assert reconciler.get(CSV).status_code == 403
    _, viewer = operator("auditor", PERM)
    assert viewer.get(PAGE).status_code == 200 and viewer.get(CSV).status_code == 200
    member = make_user("member")
    client.force_login(member)
    assert client.get(PAGE).status_code == 302  # not staff: the admin's sign-in page


def test_a_superuser_sees_it(books, now, admin_client):
    assert admin_client.get(PAGE, {"date": "2026-03-02"}).status_code == 200


# -- the CSV --------------------------------------------------------------------------------------

HEADER = [
    "日期",
    "期初本金（元）",
    "期初赠送（元）",
    "充值·本金（元）",
    "充值·赠送（元）",
    "赠送·本金（元）",
    "赠送·赠送（元）",
    "消费·本金（元）",
    "消费·赠送（元）",
    "退款·本金（元）",
    "退款·赠送（元）",
    "赠送过期·本金（元）",
    "赠送过期·赠送（元）",
    "调整·本金（元）",
    "调整·赠送（元）",
    "期末本金（元）",
    "期末赠送（元）",
]


def rows_of(response) -> list[list[str]]:
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def test_the_csv_has_a_row_per_day_with_each_lines_paid_and_bonus(books, now):
    _, viewer = operator("auditor", PERM)
    response = viewer.get(CSV, {"start": "2026-03-02", "end": "2026-03-04"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="liability-2026-03-02-2026-03-04.csv"'
    rows = rows_of(response)
    assert rows[0] == HEADER
    # Day by day, as worked out in `books` (yuan): opening, then each line's paid and bonus, then closing.
    assert rows[1:] == [
        "2026-03-02 0.00 0.00 150.00 0.00 0.00 30.00 -50.00 -10.00 0.00 0.00 0.00 0.00 0.00 5.00 100.00 25.00".split(),
        "2026-03-03 100.00 25.00 0.00 0.00 0.00 0.00 5.00 1.00 -40.00 -8.00 0.00 -6.00 -2.50 -0.50 62.50 11.50".split(),
        "2026-03-04 62.50 11.50 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.00 62.50 11.50".split(),
    ]


def test_the_csv_is_the_last_90_days_by_default(books, now):
    _, viewer = operator("auditor", PERM)
    rows = rows_of(viewer.get(CSV))
    assert len(rows) == 91
    assert rows[1][0] == "2025-12-06" and rows[-1][0] == "2026-03-05"
    assert rows[-1][-2:] == ["62.50", "11.50"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start": "2026-03-04", "end": "2026-03-02"}, "起始日期 2026-03-04 晚于截止日期 2026-03-02"),
        ({"end": "2026-3-4"}, "截止日期“2026-3-4”格式不对"),
        ({"start": "2000-01-01"}, "一次最多导出 3660 天"),
    ],
)
def test_a_bad_csv_range_says_why(books, now, params, says):
    _, viewer = operator("auditor", PERM)
    response = viewer.get(CSV, params)
    assert response.status_code == 400 and says in response.content.decode()


# -- where operators find it ----------------------------------------------------------------------


def test_the_start_page_shows_what_is_owed_now_and_links_to_the_page(books, now):
    _, viewer = operator("auditor", PERM)
    html = viewer.get("/admin/").content.decode()
    assert re.search(
        rf'href="{PAGE}" data-testid="liability">.*?预收资金（当前）.*?¥74\.00.*?本金 ¥62\.50 · 赠送 ¥11\.50', html, re.S
    )
    assert 'data-testid="last-bill-day"' not in html  # the days are not this operator's
    _, reconciler = operator("reconciler", "reconciliation.view_billday")
    html = reconciler.get("/admin/").content.decode()
    assert 'data-testid="last-bill-day"' in html and 'data-testid="liability"' not in html


def test_the_reconciliation_pages_link_to_it(books, now, admin_client):
    days = admin_client.get("/admin/reconciliation/billday/").content.decode()
    assert f'href="{PAGE}" data-testid="liability-link">预收资金' in days
    assert f'<a href="{PAGE}">预收资金</a>' in admin_client.get("/admin/reconciliation/").content.decode()
    _, reconciler = operator("reconciler", "reconciliation.view_billday")
    assert PAGE not in reconciler.get("/admin/reconciliation/billday/").content.decode()
    assert PAGE not in reconciler.get("/admin/reconciliation/").content.decode()

"""The member's statement (余额明细), as the member sees it: every kind of balance change in
words with its signed amount and the balance after it, newest first a page at a time, each
row's detail (a spend's store and reversals, a reversal's charge, a recharge's order), only
their own; and the same list for the mini program behind its bearer token."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import User
from orders.models import LedgerEntry, Refund
from tests.factories import make_order, make_user
from tests.wallet.conftest import fund
from wallet.models import Charge
from wxproto.beijing import BEIJING

pytestmark = pytest.mark.django_db

# Row i of a member's ledger is stamped START + i minutes: 2026-03-01 16:00 UTC is 03-02 00:00 in Beijing.
START = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
LINE = re.compile(
    r'<a class="[^"]*statement-item[^"]*" href="(?P<href>[^"]+)" data-entry-id="(?P<id>\d+)" data-kind="(?P<kind>[^"]+)".*?'
    r'data-testid="entry-title">(?P<title>[^<]*)<.*?'
    r'data-testid="entry-time">(?P<time>[^<]*)<.*?'
    r'<span class="(?P<amount_class>[^"]*)" data-testid="entry-amount">(?P<amount>[^<]*)<.*?'
    r'data-testid="entry-balance">(?P<balance>[^<]*)<',
    re.S,
)


def lines(html: str) -> list[dict]:
    found = [{k: html_lib.unescape(v) for k, v in m.groupdict().items()} for m in LINE.finditer(html)]
    # Every line on the page was read: a change of markup cannot make lines go unchecked.
    assert len(found) == html.count('data-testid="entry"'), html
    return found


def text(html: str) -> str:
    """The page's words, tags dropped, whitespace squeezed."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", html)))


def stamp_in_order(user) -> list[LedgerEntry]:
    """Give the user's rows, oldest first by id, one minute each from START; the rows, newest first."""
    rows = list(LedgerEntry.objects.filter(user=user).order_by("pk"))
    for i, row in enumerate(rows):
        LedgerEntry.objects.filter(pk=row.pk).update(created_at=START + timedelta(minutes=i))
    return list(LedgerEntry.objects.filter(user=user).order_by("-created_at", "-pk"))


@pytest.fixture
def ledger(member, code, pos):
    """A member with one row of every kind, in this order (balance after each):
    adjustment +30.00 (30.00), recharge +20.00 (50.00), refund -5.00 (45.00), refund_return
    +5.00 (50.00), spend -12.50 at 一号店 (37.50), spend_reversal +3.00 (40.50), an operator's
    adjustment -0.50 (40.00)."""
    order = make_order(member, amount=2000)
    order.pay("4200000000000000000000000000001", 2000, timezone.now())
    refund = order.start_refund(500, "用户申请退款")
    refund.settle(Refund.Status.FAILED)
    charged = pos.charge(code, 1250, store="一号店", description="洗衣 3 件")
    assert charged.status_code == 201, charged.content
    number = charged.json()["charge"]["id"]
    reversed_ = pos.post(f"/api/v1/charges/{number}/reversals", {"amount": 300, "reason": "少洗一件"})
    assert reversed_.status_code == 201, reversed_.content
    operator = make_user("ops-wang", is_staff=True, first_name="王五")
    LedgerEntry.adjust(member.pk, -50, "补扣差价", operator)
    rows = stamp_in_order(member)
    member.refresh_from_db()
    return {
        "member": member,
        "order": order,
        "charge": Charge.objects.get(number=number),
        "rows": rows,
        "by_kind": {row.kind: row for row in rows},  # the oldest of each kind
    }


# -- the list ---------------------------------------------------------------------------------


def test_the_statement_shows_every_kind_in_words_with_its_sign_and_the_balance_after_it(client, ledger):
    other = make_user("someone-else")
    fund(other, 777)
    client.force_login(ledger["member"])
    response = client.get("/wallet/statement/")
    assert response.status_code == 200
    html = response.content.decode()
    shown = lines(html)
    assert [(line["kind"], line["title"], line["amount"], line["balance"]) for line in shown] == [
        ("adjustment", "余额调整 · 补扣差价", "-¥0.50", "余额 ¥40.00"),
        ("spend_reversal", "消费撤销", "+¥3.00", "余额 ¥40.50"),
        ("spend", "消费 · 一号店", "-¥12.50", "余额 ¥37.50"),
        ("refund_return", "退款退回", "+¥5.00", "余额 ¥50.00"),
        ("refund", "充值退款", "-¥5.00", "余额 ¥45.00"),
        ("recharge", "充值", "+¥20.00", "余额 ¥50.00"),
        ("adjustment", "余额调整 · 测试充值", "+¥30.00", "余额 ¥30.00"),
    ]
    # Money in is drawn apart from money out.
    assert [("statement-amount_credit" in line["amount_class"]) for line in shown] == [
        False,
        True,
        False,
        True,
        False,
        True,
        True,
    ]
    # Each line opens its own row; times are Beijing's (UTC 16:00 is 00:00 the next day).
    assert [line["href"] for line in shown] == [f"/wallet/statement/{row.pk}/" for row in ledger["rows"]]
    assert [line["time"] for line in shown] == [f"2026-03-02 00:{6 - i:02d}" for i in range(7)]
    # The balance now, at the top; nobody else's rows.
    assert re.search(r'data-testid="balance">¥40\.00<', html)
    assert "7.77" not in html and "没有更多了" in html and "回到最新" not in html


def test_a_spend_without_a_store_is_named_by_its_description(client, member):
    Charge.create(amount=100, user_id=member.pk, description="打印 2 页")
    client.force_login(member)
    shown = lines(client.get("/wallet/statement/").content.decode())
    assert [(line["title"], line["amount"], line["balance"]) for line in shown[:1]] == [
        ("消费 · 打印 2 页", "-¥1.00", "余额 ¥29.00")
    ]


def test_a_member_without_rows_sees_the_empty_state(client):
    client.force_login(make_user("newcomer"))
    html = client.get("/wallet/statement/").content.decode()
    assert 'data-testid="statement-empty"' in html and "还没有余额变动" in html
    assert lines(html) == [] and re.search(r'data-testid="balance">¥0\.00<', html)


def test_the_statement_needs_a_signed_in_member(client):
    response = client.get("/wallet/statement/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert client.get("/wallet/statement/1/").status_code == 302


def page_through(client, first_url: str, pages: int = 5) -> tuple[list[int], list[str]]:
    """Follow 更多 from `first_url` to the end: the ids seen, in order, and each page's HTML."""
    seen, htmls, url = [], [], first_url
    for _ in range(pages):
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        htmls.append(html)
        seen += [int(line["id"]) for line in lines(html)]
        more = re.search(r'href="\?before=([^"]+)" data-testid="more"', html)
        if not more:
            return seen, htmls
        url = "/wallet/statement/?before=" + html_lib.unescape(more.group(1))
    pytest.fail("the 更多 links never ended")


def test_45_rows_page_through_newest_first_20_at_a_time_each_once(client, member):
    for n in range(44):
        fund(member, n + 1)
    rows = stamp_in_order(member)
    # Five rows in the same microsecond, across the first page's end: the cursor's id keeps them apart.
    tied = [row.pk for row in rows[17:22]]
    LedgerEntry.objects.filter(pk__in=tied).update(created_at=rows[19].created_at)
    expected = list(LedgerEntry.objects.filter(user=member).order_by("-created_at", "-pk").values_list("pk", flat=True))
    assert len(expected) == 45
    client.force_login(member)
    seen, htmls = page_through(client, "/wallet/statement/")
    assert seen == expected  # all of them, newest first, none twice
    assert [len(lines(html)) for html in htmls] == [20, 20, 5]
    assert "回到最新" not in htmls[0] and all("回到最新" in html for html in htmls[1:])
    assert "没有更多了" in htmls[-1]


def test_a_page_costs_the_same_queries_whatever_its_rows_are_and_wherever_it_is(client, ledger, member):
    client.force_login(member)
    with CaptureQueriesContext(connection) as mixed:
        assert len(lines(client.get("/wallet/statement/").content.decode())) == 7
    plain = make_user("plain")
    for n in range(25):
        fund(plain, n + 1)
    client.force_login(plain)
    first = client.get("/wallet/statement/").content.decode()
    cursor = html_lib.unescape(re.search(r'href="\?before=([^"]+)"', first).group(1))
    with CaptureQueriesContext(connection) as on_first:
        client.get("/wallet/statement/")
    with CaptureQueriesContext(connection) as on_second:
        assert len(lines(client.get("/wallet/statement/?before=" + cursor).content.decode())) == 5
    # No query a line (a spend's store, a reversal's charge, an order's number); the first page
    # also says when the next bonus expires.
    assert len(mixed) == len(on_first) == len(on_second) + 1


BAD_CURSORS = [
    "abc",
    "2026-11-02T01:30:00%2B00:00|x",
    "nope|12",
    "2026-11-02T01:30:00|1",
    "|",
    "2026-11-02T01:30:00%2B00:00|１２",
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_bad_cursor_shows_the_first_page(client, member, cursor):
    client.force_login(member)
    response = client.get("/wallet/statement/?before=" + cursor)
    assert response.status_code == 200
    assert [line["title"] for line in lines(response.content.decode())] == ["余额调整 · 测试充值"]


def test_a_cursor_past_the_oldest_row_says_there_is_nothing_older(client, member):
    client.force_login(member)
    html = client.get("/wallet/statement/?before=2000-01-01T00:00:00%2B00:00|1").content.decode()
    assert lines(html) == [] and "没有更早的记录了" in html and "回到最新" in html


# -- one row ----------------------------------------------------------------------------------


def detail(client, row) -> str:
    response = client.get(f"/wallet/statement/{row.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_spend_shows_its_charge_store_status_and_each_reversal(client, ledger):
    charge, spend = ledger["charge"], ledger["by_kind"]["spend"]
    reversal_row = ledger["by_kind"]["spend_reversal"]
    client.force_login(ledger["member"])
    html = detail(client, spend)
    words = text(html)
    assert "消费 · 一号店" in words and "-¥12.50" in words
    assert "变动后余额 ¥37.50" in words and "时间 2026-03-02 00:04:00" in words
    assert f"消费单号 {charge.number}" in words and "门店 一号店" in words and "说明 洗衣 3 件" in words
    assert "状态 部分撤销" in words
    reversals = re.findall(r'<a [^>]*href="([^"]+)" data-testid="reversal">(.*?)</a>', html, re.S)
    assert len(reversals) == 1
    href, body = reversals[0]
    assert href == f"/wallet/statement/{reversal_row.pk}/"
    assert "撤销 · 少洗一件" in text(body) and "+¥3.00" in text(body)
    assert timezone.localtime(charge.reversals.get().created_at).strftime("%Y-%m-%d %H:%M") in text(body)


def test_a_reversal_shows_its_reason_and_opens_the_spend_it_gives_back(client, ledger):
    charge, spend = ledger["charge"], ledger["by_kind"]["spend"]
    client.force_login(ledger["member"])
    html = detail(client, ledger["by_kind"]["spend_reversal"])
    words = text(html)
    assert "消费撤销" in words and "+¥3.00" in words and "变动后余额 ¥40.50" in words
    assert "撤销原因 少洗一件" in words and f"撤销单号 {charge.reversals.get().number}" in words
    link = re.search(r'href="([^"]+)" data-testid="entry-charge-link">(.*?)</a>', html, re.S)
    assert link and link.group(1) == f"/wallet/statement/{spend.pk}/"
    assert "消费 · 一号店" in text(link.group(2)) and charge.number in link.group(2)


def test_recharge_and_refund_rows_name_and_open_their_order(client, ledger):
    order = ledger["order"]
    client.force_login(ledger["member"])
    for kind, words_expected in [
        ("recharge", ["充值", "+¥20.00", "变动后余额 ¥50.00"]),
        ("refund", ["充值退款", "-¥5.00", "变动后余额 ¥45.00", "退款状态 退款失败"]),
        ("refund_return", ["退款退回", "+¥5.00", "变动后余额 ¥50.00", "退款失败，退回余额"]),
    ]:
        html = detail(client, ledger["by_kind"][kind])
        words = text(html)
        assert all(w in words for w in words_expected), (kind, words)
        assert f"充值订单号 {order.out_trade_no}" in words
        assert f'href="/orders/{order.out_trade_no}/" data-testid="entry-order-link"' in html
    # The order page it opens is the member's.
    assert client.get(f"/orders/{order.out_trade_no}/").status_code == 200


def test_an_adjustment_shows_its_reason_and_never_the_operator(client, ledger):
    client.force_login(ledger["member"])
    html = detail(client, ledger["by_kind"]["adjustment"])  # the fixture's: no operator
    assert "调整原因 测试充值" in text(html)
    latest = ledger["rows"][0]
    assert latest.operator is not None
    html = detail(client, latest)
    words = text(html)
    assert "余额调整 · 补扣差价" in words and "-¥0.50" in words and "调整原因 补扣差价" in words
    assert "ops-wang" not in html and "王五" not in html


def test_another_members_row_is_not_found(client, ledger):
    stranger = make_user("stranger")
    client.force_login(stranger)
    for row in ledger["rows"]:
        assert client.get(f"/wallet/statement/{row.pk}/").status_code == 404
    assert client.get("/wallet/statement/999999/").status_code == 404
    assert lines(client.get("/wallet/statement/").content.decode()) == []


# -- the mini program -------------------------------------------------------------------------


def bearer(user) -> dict:
    User.objects.filter(pk=user.pk).update(miniprogram_openid=f"oMini{user.pk:08d}")
    user.refresh_from_db()
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(user)}"}


def test_the_mini_program_gets_the_same_rows_as_the_page(client, ledger):
    member, charge = ledger["member"], ledger["charge"]
    client.force_login(member)
    page = lines(client.get("/wallet/statement/").content.decode())
    client.logout()
    response = client.get("/api/mp/statement", **bearer(member))
    assert response.status_code == 200
    body = response.json()
    assert body["balance_fen"] == 4000 and body["next_before"] is None
    results = body["results"]
    assert [r["id"] for r in results] == [int(line["id"]) for line in page]
    assert [r["title"] for r in results] == [line["title"] for line in page]
    assert [(r["kind"], r["kind_text"], r["amount_fen"], r["balance_after_fen"]) for r in results] == [
        ("adjustment", "余额调整", -50, 4000),
        ("spend_reversal", "消费撤销", 300, 4050),
        ("spend", "消费", -1250, 3750),
        ("refund_return", "退款退回", 500, 5000),
        ("refund", "充值退款", -500, 4500),
        ("recharge", "充值", 2000, 5000),
        ("adjustment", "余额调整", 3000, 3000),
    ]
    # Beijing time, as every API of the site gives it.
    assert [r["created_at"] for r in results] == [
        timezone.localtime(row.created_at, BEIJING).isoformat(timespec="seconds") for row in ledger["rows"]
    ]
    assert datetime.fromisoformat(results[-1]["created_at"]) == START
    # A spend and its reversal carry the charge; other rows do not.
    expected_charge = {
        "number": charge.number,
        "store": "一号店",
        "description": "洗衣 3 件",
        "status": "partially_reversed",
    }
    for r in results:
        if r["kind"] in ("spend", "spend_reversal"):
            assert {k: r["charge"][k] for k in expected_charge} == expected_charge
        else:
            assert "charge" not in r
    assert results[1]["reversal"]["reason"] == "少洗一件"
    assert {r["out_trade_no"] for r in results if r["kind"] in ("recharge", "refund", "refund_return")} == {
        ledger["order"].out_trade_no
    }


def test_the_mini_program_pages_through_by_next_before(client, member):
    for n in range(44):
        fund(member, n + 1)
    stamp_in_order(member)
    expected = list(LedgerEntry.objects.filter(user=member).order_by("-created_at", "-pk").values_list("pk", flat=True))
    auth = bearer(member)
    seen, params, sizes = [], {}, []
    for _ in range(5):
        body = client.get("/api/mp/statement", params, **auth).json()
        sizes.append(len(body["results"]))
        seen += [r["id"] for r in body["results"]]
        if body["next_before"] is None:
            break
        params = {"before": body["next_before"]}
    assert seen == expected and sizes == [20, 20, 5]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_the_mini_program_treats_a_bad_cursor_as_the_first_page(client, member, cursor):
    body = client.get("/api/mp/statement?before=" + cursor, **bearer(member)).json()
    assert [r["title"] for r in body["results"]] == ["余额调整 · 测试充值"]


def test_the_mini_program_statement_needs_the_token_and_is_read_only(client, ledger):
    member = ledger["member"]
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer forged"}, {"HTTP_AUTHORIZATION": "Basic abc"}):
        response = client.get("/api/mp/statement", **headers)
        assert response.status_code == 401 and response.json()["error"] == "login_required"
    # A session is not a token.
    client.force_login(member)
    assert client.get("/api/mp/statement").status_code == 401
    client.logout()
    assert client.post("/api/mp/statement", **bearer(member)).status_code == 405
    # Another member's token sees only their own rows.
    stranger = make_user("stranger")
    body = client.get("/api/mp/statement", **bearer(stranger)).json()
    assert body == {"balance_fen": 0, "results": [], "next_before": None}

"""/recharge/ and /orders/ as a signed-in user sees them, and the operators' admin."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as dj_timezone

from orders.models import RechargeOrder, Refund
from tests.factories import make_order, make_user
from tests.helpers import notify_xml

pytestmark = pytest.mark.django_db
WECHAT_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN"


@pytest.fixture
def payer(db):
    return make_user("payer", openid="oPayer")


def test_recharge_shows_balance_presets_and_the_pay_button(client, payer, settings):
    settings.RECHARGE_PRESETS = ["10", "30", "0.5", "bad", "99999"]
    client.force_login(payer)
    html = client.get("/recharge/").content.decode()
    assert "¥0.00" in html and 'value="10"' in html and 'value="0.5"' in html
    assert 'value="bad"' not in html and 'value="99999"' not in html
    assert "立即充值" in html and "sandbox/cashier.js" in html


def test_inside_wechat_without_the_sandbox_it_pays_through_the_bridge(client, payer, settings):
    settings.WECHAT_SANDBOX = False
    client.force_login(payer)
    session = client.session
    session["wechat_current_openid"] = payer.openid  # 网页授权 said this WeChat is the account's
    session.save()
    html = client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert "立即充值" in html and "<svg" not in html and "sandbox/cashier.js" not in html


def test_inside_wechat_a_bound_user_is_sent_through_silent_authorisation_to_tell_which_wechat_this_is(client, payer):
    client.force_login(payer)
    response = client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA)
    assert response.status_code == 302 and response["Location"] == "/accounts/wechat/authorize/?next=%2Frecharge%2F"


def test_inside_another_wechat_the_page_offers_no_jsapi_and_a_way_to_sign_in_as_it(client, payer):
    client.force_login(payer)
    session = client.session
    session["wechat_current_openid"] = "oSomeoneElsesWeChat"
    session.save()
    html = client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA).content.decode()
    assert "当前微信不是该账户绑定的微信" in html and 'data-testid="switch-wechat"' in html
    assert "支付方式：<strong>微信扫码支付</strong>" in html and "立即充值" not in html


def test_inside_wechat_a_user_without_openid_is_sent_through_silent_authorisation(client):
    client.force_login(make_user("fresh"))
    response = client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/wechat/authorize/?next=%2Frecharge%2F"


def test_history_lists_newest_first_with_status_words_and_beijing_times(client, payer):
    old = make_order(payer, amount=1000, created_at=datetime(2026, 11, 1, 1, 30, tzinfo=UTC))
    paid = make_order(payer, amount=1990, created_at=datetime(2026, 11, 2, 1, 30, tzinfo=UTC))
    client.post(
        "/payments/wechat/notify/", notify_xml(paid.out_trade_no, 1990, time_end="20261102093100"), content_type="text/xml"
    )
    closed = make_order(payer, amount=30, created_at=datetime(2026, 11, 3, 1, 30, tzinfo=UTC), status=RechargeOrder.Status.CLOSED)
    refunded = make_order(
        payer,
        amount=50,
        created_at=datetime(2026, 11, 4, 1, 30, tzinfo=UTC),
        status=RechargeOrder.Status.REFUNDED,
        refunded_amount=50,
        transaction_id="4200000000000050",
    )
    Refund.objects.create(
        order=refunded, out_refund_no=Refund.new_out_refund_no(), amount=50, reason="test", status=Refund.Status.SUCCESS
    )
    make_order(make_user("someone-else"), amount=777)
    client.force_login(payer)
    html = client.get("/orders/").content.decode()
    positions = [html.index(o.out_trade_no) for o in (refunded, closed, paid, old)]
    assert positions == sorted(positions)
    for word in ("待支付", "已支付", "已关闭", "已退款"):
        assert word in html
    assert "¥19.90" in html and "¥0.30" in html and "7.77" not in html
    text = re.sub(r"<[^>]+>", "", html)
    assert "创建 2026-11-02 09:30 · 支付 2026-11-02 09:31" in text  # UTC 01:30 is 09:30 in Beijing


def test_history_pages_through_45_orders_newest_first_by_keyset_without_counting(client, payer):
    start = dj_timezone.now()
    for n in range(45):
        make_order(payer, amount=100 + n, created_at=start - timedelta(minutes=n))
    # Two orders at the same second: the cursor's pk keeps them apart.
    make_order(payer, amount=9001, created_at=start - timedelta(minutes=19))
    client.force_login(payer)
    seen, url = [], "/orders/"
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            html = client.get(url).content.decode()
        assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
        seen += re.findall(r'data-out-trade-no="([^"]+)"', html)
        more = re.search(r'href="\?before=([^"]+)"', html)
        if not more:
            assert "没有更多了" in html
            break
        assert html.count('class="weui-cell weui-cell_access order-item"') == 20
        url = "/orders/?before=" + more.group(1)
    else:
        pytest.fail("the 更多 links never ended")
    expected = list(
        RechargeOrder.objects.filter(user=payer).order_by("-created_at", "-pk").values_list("out_trade_no", flat=True)
    )
    assert seen == expected and len(seen) == 46  # every order once, newest first
    assert "回到最新" in html


def test_a_later_history_page_costs_the_same_queries_as_the_first(client, payer):
    start = dj_timezone.now()
    for n in range(45):
        make_order(payer, created_at=start - timedelta(minutes=n))
    client.force_login(payer)
    first = client.get("/orders/").content.decode()
    cursor = re.search(r'href="\?before=([^"]+)"', first).group(1)
    with CaptureQueriesContext(connection) as on_first:
        client.get("/orders/")
    with CaptureQueriesContext(connection) as on_second:
        client.get("/orders/?before=" + cursor)
    assert len(on_first) == len(on_second)


@pytest.mark.parametrize(
    "cursor",
    ["abc", "2026-11-02T01:30:00%2B00:00|x", "nope|12", "2026-11-02T01:30:00|1", "|", "2026-11-02T01:30:00%2B00:00|１２"],
)
def test_a_bad_history_cursor_shows_the_first_page(client, payer, cursor):
    make_order(payer, amount=1234)
    client.force_login(payer)
    response = client.get("/orders/?before=" + cursor)
    assert response.status_code == 200 and "¥12.34" in response.content.decode()


def test_a_cursor_older_than_every_order_says_there_is_nothing_more(client, payer):
    make_order(payer, amount=1234)
    client.force_login(payer)
    html = client.get("/orders/?before=2000-01-01T00:00:00%2B00:00|1").content.decode()
    assert "¥12.34" not in html and "没有更早的记录了" in html and 'href="/orders/"' in html


def test_history_rows_link_to_their_order_page(client, payer):
    order = make_order(payer, amount=1000)
    client.force_login(payer)
    html = client.get("/orders/").content.decode()
    assert f'href="/orders/{order.out_trade_no}/"' in html


def test_history_has_an_empty_state(client, payer):
    client.force_login(payer)
    html = client.get("/orders/").content.decode()
    assert "还没有充值记录" in html and "去充值" in html


def test_history_needs_login(client):
    assert client.get("/orders/")["Location"].startswith("/accounts/login/")


def test_admin_pages_for_operators(admin_client, payer):
    order = make_order(payer, amount=1990)
    admin_client.post("/payments/wechat/notify/", notify_xml(order.out_trade_no, 1990), content_type="text/xml")
    for url in (
        "/admin/orders/rechargeorder/",
        f"/admin/orders/rechargeorder/{order.pk}/change/",
        "/admin/orders/rechargeorder/?status__exact=1",
        f"/admin/orders/rechargeorder/?q={order.out_trade_no}",
        "/admin/orders/ledgerentry/",
        "/admin/payments/notification/",
        f"/admin/accounts/user/{payer.pk}/change/",
        "/admin/accounts/user/?q=oPayer",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get("/admin/orders/rechargeorder/").content.decode()
    assert "¥19.90" in page and order.out_trade_no in page
    user_page = admin_client.get(f"/admin/accounts/user/{payer.pk}/change/").content.decode()
    assert 'name="balance"' not in user_page and "¥19.90" in user_page
    assert admin_client.get("/admin/orders/rechargeorder/add/").status_code == 403

"""The member pay code page in Chromium, on a phone in WeChat: the code renews each minute, a
counter's charge turns it into 支付成功, and an expired code with no network is covered
(the page's JSON and pictures are tested in tests/wallet/test_paycode.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from tests.browser.conftest import sign_in_with_cookie
from tests.factories import make_user
from tests.wallet.conftest import ALL_SCOPES, Api, fund
from tests.wallet.test_paycode import PAGE, grouped, read_code128
from wallet.models import ApiClient, MemberCode


@pytest.fixture
def member():
    user = make_user("member", openid="oMember")
    fund(user, 3000)
    return user


@pytest.fixture
def pos(client):
    api_client, secret = ApiClient.issue("前台收银", ALL_SCOPES)
    return Api(client, secret)


# -- in Chromium ----------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_wechat_the_code_renews_each_minute_and_a_charge_turns_it_into_paid(phone, live_server, member, pos):
    from playwright.sync_api import expect

    page = phone
    sign_in_with_cookie(page, live_server, member.username, PAGE)
    view = page.get_by_test_id("paycode")
    first = view.get_attribute("data-code")
    assert first == MemberCode.objects.get(user=member).code
    expect(page.get_by_test_id("code-digits")).to_have_text(grouped(first))
    expect(page.get_by_test_id("balance")).to_have_text("¥30.00")
    expect(page.get_by_text("向收银员出示此码，每分钟自动更新")).to_be_visible()
    # Wide enough for a counter's scanner: the card's width less its margins.
    barcode = page.locator("[data-testid=barcode] svg").bounding_box()
    assert barcode["width"] >= 340 and barcode["height"] >= 60, barcode

    # A minute on (the server's clock: the live server runs in this process), the page's next
    # question brings a new code, drawn in place.
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        expect(view).not_to_have_attribute("data-code", first, timeout=8_000)
        second = view.get_attribute("data-code")
        expect(page.get_by_test_id("code-digits")).to_have_text(grouped(second))
        assert read_code128(page.locator("[data-testid=barcode] svg").evaluate("e => e.outerHTML")) == second

        answer = pos.charge(second, 1250, store="一号店", description="拿铁")
        assert answer.status_code == 201, answer.content
        expect(page.get_by_test_id("paid-title")).to_be_visible(timeout=8_000)
    expect(page.get_by_test_id("paid-title")).to_have_text("支付成功")
    expect(page.get_by_test_id("paid-title")).to_be_focused()
    expect(page.get_by_test_id("paycode-show")).to_be_hidden()  # no used code left on screen
    expect(page.get_by_test_id("paid-amount")).to_have_text("¥12.50")
    expect(page.get_by_test_id("paid-where")).to_have_text("一号店 · 拿铁")
    expect(page.get_by_test_id("paid-balance")).to_have_text("当前余额 ¥17.50")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥17.50")

    page.get_by_role("button", name="显示新的会员码").click()
    expect(page.get_by_test_id("paycode-show")).to_be_visible()
    expect(page.get_by_test_id("paid-title")).to_be_hidden()
    third = view.get_attribute("data-code")
    assert third not in (first, second) and third == MemberCode.objects.filter(user=member).latest("created_at").code
    expect(page.get_by_test_id("code-digits")).to_have_text(grouped(third))
    expect(page.get_by_test_id("balance")).to_have_text("¥17.50")
    assert page.errors == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_with_no_network_an_expired_code_is_covered_until_refreshed(phone, live_server, member):
    from playwright.sync_api import expect

    page = phone
    page.clock.install()
    sign_in_with_cookie(page, live_server, member.username, PAGE)
    expect(page.get_by_test_id("paycode-stale")).to_be_hidden()
    page.route("**/wallet/code.json*", lambda route: route.abort())
    page.clock.run_for(91_000)
    expect(page.get_by_test_id("paycode-stale")).to_be_visible()
    expect(page.get_by_test_id("paycode-stale")).to_contain_text("会员码已过期")
    expect(page.get_by_test_id("paycode-notice")).to_have_text("网络异常，请检查网络后重试")

    page.unroute("**/wallet/code.json*")
    page.get_by_role("button", name="刷新").click()
    expect(page.get_by_test_id("paycode-stale")).to_be_hidden()
    expect(page.get_by_test_id("paycode-notice")).to_be_hidden()
    assert [e for e in page.errors if "ERR_FAILED" not in e] == []

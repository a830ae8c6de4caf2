"""Packages and tiers on the recharge page, in Chromium on a phone in WeChat: a member picks
充100送20, pays in the sandbox's cashier and has ¥120.00; a member types ¥1200 and is told the
满 1000 送 200 it earns; the server's refusals (package_limit, package_unavailable) are shown
in the page's error area."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from offers.models import BonusTier, Package
from orders.models import RechargeOrder
from tests.browser.conftest import shoot, sign_in_with_cookie, wechat_member
from tests.factories import make_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def offers(db):
    """What an operator might have on sale: four packages and two tiers."""
    return {
        "first": Package.objects.create(name="首充礼", price=5000, bonus=5000, per_user_limit=1, position=1),
        "hundred": Package.objects.create(name="充100送20", price=10000, bonus=2000, bonus_valid_days=365, position=2),
        "two_hundred": Package.objects.create(name="充200送50", price=20000, bonus=5000, bonus_valid_days=365, position=3),
        "five_hundred": Package.objects.create(name="充500送150", price=50000, bonus=15000, position=4),
        "tiers": [
            BonusTier.objects.create(threshold=50000, bonus=5000),
            BonusTier.objects.create(threshold=100000, bonus=20000, bonus_valid_days=180),
        ],
    }


def open_recharge(phone, live_server, username: str, query: str = "") -> None:
    sign_in_with_cookie(phone, live_server, username, "/recharge/" + query)
    phone.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page


def test_a_member_picks_a_hundred_with_twenty_pays_and_has_a_hundred_and_twenty(phone, live_server, offers):
    wechat_member(phone, live_server, "mei")
    open_recharge(phone, live_server, "mei")
    grid = phone.get_by_role("radiogroup", name="选择充值金额")
    expect(grid.get_by_role("radio")).to_have_count(4)
    shoot(phone, "packages-1-grid")

    hundred = grid.get_by_role("radio", name="¥100 送 ¥20", exact=True)
    hundred.check()
    expect(hundred).to_be_checked()
    expect(phone.get_by_test_id("package-hint")).to_have_text("支付 ¥100.00，到账 ¥120.00 · 赠送 365 天内有效")
    expect(phone.locator("#amount")).to_have_value("")
    shoot(phone, "packages-2-chosen")

    phone.get_by_test_id("pay-button").click()
    sheet = phone.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥100.00")  # the package's price, set by the server
    sheet.get_by_role("button", name="支付", exact=True).click()

    expect(phone).to_have_url(re.compile(r"/orders/\d{26}/\?result=ok$"))
    expect(phone.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(phone.get_by_test_id("order-desc")).to_contain_text("当前余额 ¥120.00")
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥120.00")
    shoot(phone, "packages-3-paid")
    order = RechargeOrder.objects.get()
    assert (order.package, order.amount, order.bonus) == (offers["hundred"], 10000, 2000)
    assert phone.errors == []


def test_a_member_types_twelve_hundred_and_is_told_the_tier_it_earns(phone, live_server, offers):
    wechat_member(phone, live_server, "lan")
    open_recharge(phone, live_server, "lan", f"?package={offers['two_hundred'].pk}")
    chosen = phone.get_by_role("radio", name="¥200 送 ¥50", exact=True)
    expect(chosen).to_be_checked()  # ?package= preselects
    hint = phone.get_by_test_id("tier-hint")
    expect(hint).to_contain_text("满额赠送：满 500 送 50 · 满 1000 送 200")
    bonus = phone.get_by_test_id("tier-bonus")
    expect(bonus).to_be_hidden()

    amount = phone.locator("#amount")
    amount.press_sequentially("300")
    expect(chosen).not_to_be_checked()  # typing lets go of the package
    expect(phone.get_by_test_id("package-hint")).to_be_hidden()
    expect(bonus).to_be_hidden()  # ¥300 reaches no tier
    amount.fill("")
    amount.press_sequentially("1200")
    expect(bonus).to_have_text("充 ¥1200.00 送 ¥200.00（赠送 180 天内有效）")
    amount.fill("600")
    expect(bonus).to_have_text("充 ¥600.00 送 ¥50.00")
    amount.fill("1200")
    shoot(phone, "packages-4-tier")

    phone.get_by_test_id("pay-button").click()
    sheet = phone.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥1200.00")
    order = RechargeOrder.objects.get()
    assert (order.package, order.amount, order.bonus, order.bonus_valid_days) == (None, 120000, 20000, 180)
    assert phone.errors == []


def test_the_servers_refusals_of_a_package_are_shown_in_the_error_area(phone, live_server, offers):
    member = wechat_member(phone, live_server, "qing")
    order = make_order(member, amount=5000, package=offers["first"], bonus=5000, package_limit=1)
    order.pay("4200000000000000000000000001", 5000, timezone.now())  # 首充礼, bought already
    open_recharge(phone, live_server, "qing")

    phone.get_by_role("radio", name="¥50 送 ¥50 首充礼", exact=True).check()
    expect(phone.get_by_test_id("package-hint")).to_have_text("首充礼：支付 ¥50.00，到账 ¥100.00 · 每人限购 1 次")
    phone.get_by_test_id("pay-button").click()
    error = phone.get_by_role("alert").filter(has_text="限购")
    expect(error).to_have_text("「首充礼」每人限购 1 次，您已购买或有待支付的订单")
    expect(phone.get_by_test_id("pay-button")).to_be_enabled()
    shoot(phone, "packages-5-limit")

    Package.objects.filter(pk=offers["five_hundred"].pk).update(is_active=False)  # while the page is open
    phone.get_by_role("radio", name="¥500 送 ¥150", exact=True).check()
    expect(phone.get_by_test_id("recharge-error")).to_be_hidden()  # a new choice clears the old error
    phone.get_by_test_id("pay-button").click()
    expect(phone.get_by_test_id("recharge-error")).to_have_text("该套餐已下架或不在活动时间内，请刷新页面后重新选择")
    assert RechargeOrder.objects.count() == 1  # the paid 首充礼 only

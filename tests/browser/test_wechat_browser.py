"""Inside WeChat's browser (its User-Agent): a new user is bound silently and pays."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from orders.models import RechargeOrder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI Language/zh_CN"
)


@pytest.fixture
def wechat_page(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN", user_agent=WECHAT_UA
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_new_user_is_bound_silently_and_pays(wechat_page, live_server, screenshot):
    page = wechat_page
    page.goto(live_server.url + "/accounts/register/")
    page.get_by_label("用户名").fill("wechat-user")
    page.get_by_label("密码", exact=True).fill("tea-leaf-river-42")
    page.get_by_label("密码确认").fill("tea-leaf-river-42")
    page.get_by_role("button", name="注册").click()
    # /recharge/ -> /accounts/wechat/authorize/ -> sandbox OAuth -> callback -> /recharge/, no click
    expect(page.get_by_test_id("pay-button")).to_be_visible()
    page.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page
    expect(page.get_by_test_id("bind-wechat")).to_have_count(0)
    user = User.objects.get(username="wechat-user")
    assert user.openid and user.openid.startswith("o")

    page.get_by_role("radio", name="¥50", exact=True).check()
    page.get_by_test_id("pay-button").click()
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="支付", exact=True).click()
    expect(page.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥50.00")
    screenshot("30-wechat-ua-paid")
    order = RechargeOrder.objects.get()
    assert order.openid == user.openid and order.status == RechargeOrder.Status.PAID

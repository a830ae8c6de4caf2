"""A user recharges ¥10 end to end in Chromium on a phone in WeChat: bound silently through the
sandbox's OAuth, pay in its cashier, and the notify arrives through the sandbox's real HTTP
delivery."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from accounts.models import User
from devtools.wechat_sandbox.models import Delivery
from orders.models import LedgerEntry, RechargeOrder
from payments.models import Notification
from tests.browser.conftest import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def register(page, live_server, name):
    page.goto(live_server.url + "/accounts/register/")
    page.get_by_label("用户名").fill(name)
    page.get_by_label("密码", exact=True).fill("tea-leaf-river-42")
    page.get_by_label("密码确认").fill("tea-leaf-river-42")
    page.get_by_role("button", name="注册").click()
    expect(page).to_have_url(re.compile(re.escape(live_server.url) + r"/recharge/(#wechat_redirect)?$"))
    page.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page


def test_a_user_binds_wechat_recharges_ten_yuan_and_sees_it(phone, live_server, delivery_worker, settings):
    page = phone

    def screenshot(name):
        shoot(page, name)

    settings.SANDBOX_NOTIFY_TIME_SCALE = 0.01
    delivery_worker()
    # Registered inside WeChat: the recharge page binds this WeChat silently (网页授权, snsapi_base),
    # through /sandbox/connect/oauth2/authorize and back (the browser carries authorize's
    # #wechat_redirect fragment along the redirects).
    page.goto(live_server.url + "/accounts/register/")
    page.get_by_label("用户名").fill("li")
    page.get_by_label("密码", exact=True).fill("tea-leaf-river-42")
    page.get_by_label("密码确认").fill("tea-leaf-river-42")
    page.get_by_role("button", name="注册").click()
    expect(page).to_have_url(re.compile(re.escape(live_server.url) + r"/recharge/(#wechat_redirect)?$"))
    page.wait_for_load_state("load")
    expect(page.get_by_test_id("bind-wechat")).to_have_count(0)
    assert User.objects.get(username="li").openid.startswith("o")
    screenshot("20-recharge")

    page.get_by_role("radio", name="¥10", exact=True).check()
    expect(page.locator("#amount")).to_have_value("10")
    page.get_by_test_id("pay-button").click()
    sheet = page.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥10.00")
    expect(page.get_by_test_id("pay-button")).to_be_disabled()  # no second order while paying
    screenshot("21-cashier")
    sheet.get_by_role("button", name="支付", exact=True).click()

    # The pay flow lands on the order's own page, which asks the server.
    expect(page).to_have_url(re.compile(r"/orders/\d{26}/\?result=ok$"))
    expect(page.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥10.00")
    screenshot("22-success")

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Delivery.objects.filter(state=Delivery.DELIVERED).exists():
        time.sleep(0.1)
    order = RechargeOrder.objects.get()
    assert Delivery.objects.get().state == Delivery.DELIVERED
    assert Notification.objects.filter(
        out_trade_no=order.out_trade_no, signature_valid=True, outcome__in=["applied", "duplicate"]
    ).exists()
    assert order.status == RechargeOrder.Status.PAID and LedgerEntry.objects.get().amount == 1000

    page.get_by_role("link", name="充值记录").click()
    item = page.locator(f'[data-out-trade-no="{order.out_trade_no}"]')
    expect(item).to_contain_text("¥10.00")
    expect(item).to_contain_text("已支付")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥10.00")
    screenshot("23-orders")


def test_cancel_and_a_bad_amount_leave_the_page_usable(phone, live_server):
    page = phone

    def screenshot(name):
        shoot(page, name)

    register(page, live_server, "zhao")  # bound silently to this WeChat on the way to /recharge/
    assert User.objects.get(username="zhao").openid
    page.locator("#amount").fill("0.001")
    page.get_by_test_id("pay-button").click()
    expect(page.get_by_test_id("recharge-error")).to_contain_text("正确的金额")
    page.locator("#amount").fill("20.50")
    page.get_by_test_id("pay-button").click()
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="取消").click()
    # A cancel lands on the order's page too: still pending, and it can be paid again from there.
    expect(page.get_by_test_id("order-result")).to_have_text("已取消支付")
    expect(page.get_by_test_id("pay-again")).to_be_enabled()
    screenshot("24-cancelled")
    order = RechargeOrder.objects.get()
    assert order.status == RechargeOrder.Status.PENDING and order.amount == 2050
    page.go_back()  # back on /recharge/, the button is usable again
    expect(page.get_by_test_id("pay-button")).to_be_enabled()
    expect(page.get_by_test_id("pay-button")).to_have_text("立即充值")

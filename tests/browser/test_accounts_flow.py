from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_visitor_registers_signs_in_and_sees_a_zero_balance(page, live_server, screenshot):
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="登录账户")).to_be_visible()
    # WeUI's stylesheet really loaded: the primary button is WeChat green.
    color = page.locator("button.weui-btn_primary").evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(7, 193, 96)"
    screenshot("01-login")

    page.get_by_role("link", name="注册").click()
    page.get_by_label("用户名").fill("wang")
    page.get_by_label("密码", exact=True).fill("12345678")
    page.get_by_label("密码确认").fill("12345678")
    page.get_by_role("button", name="注册").click()
    expect(page.locator('.field-error[data-field="password2"]')).to_contain_text(["太常见", "只包含数字"])
    screenshot("02-register-error")

    page.get_by_label("密码", exact=True).fill("tea-leaf-river-42")
    page.get_by_label("密码确认").fill("tea-leaf-river-42")
    page.get_by_role("button", name="注册").click()
    expect(page).to_have_url(live_server.url + "/recharge/")
    expect(page.get_by_test_id("balance")).to_have_text("¥0.00")
    screenshot("03-recharge-after-register")
    assert User.objects.filter(username="wang").exists()

    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("heading", name="登录账户")).to_be_visible()
    page.get_by_label("用户名").fill("wang")
    page.get_by_label("密码").fill("wrong-password")
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".form-error")).to_contain_text("正确的")
    page.get_by_label("密码").fill("tea-leaf-river-42")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_test_id("balance")).to_have_text("¥0.00")

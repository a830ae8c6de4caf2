"""A superuser's first sign-in to the admin in Chromium with the second factor on: the password,
then enrolment (the QR code and the secret to type, a code from the app), the recovery codes
once, and the admin; signed out and in again, a recovery code instead of the phone. No page
breaks the site's Content-Security-Policy (a violation is a console error)."""

from __future__ import annotations

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from accounts.models import User
from tests.browser.conftest import open_page, shoot
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desktop(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    settings.OPERATOR_2FA_REQUIRED = True
    page = open_page(browser, viewport={"width": 1366, "height": 900})
    yield page
    page.context.close()


def sign_in(page, live_server) -> None:
    page.goto(live_server.url + "/admin/")
    page.get_by_label("用户名").fill("yunying")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()


def test_a_superuser_enrols_at_first_sign_in_then_uses_a_recovery_code(desktop, live_server):
    user = User.objects.create_superuser("yunying", password=PASSWORD)

    sign_in(desktop, live_server)
    expect(desktop.get_by_role("heading", name="你的账号可以操作资金，需要开启两步验证")).to_be_visible()
    expect(desktop.get_by_test_id("otp-qr").locator("svg")).to_be_visible()
    secret = desktop.get_by_test_id("otp-secret").input_value()
    device = TOTPDevice.objects.get(user=user)
    assert secret.replace(" ", "") and not device.confirmed
    shoot(desktop, "70-admin-otp-setup")

    desktop.get_by_label("验证码").fill(f"{totp(device.bin_key):06d}")
    desktop.get_by_role("button", name="确认绑定").click()
    codes = desktop.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    shoot(desktop, "71-admin-otp-recovery-codes")
    desktop.get_by_role("link", name="我已保存恢复码，进入后台").click()
    expect(desktop.get_by_test_id("dashboard")).to_be_visible()

    desktop.get_by_role("button", name="注销").click()
    sign_in(desktop, live_server)
    expect(desktop.get_by_label("验证码")).to_be_visible()
    shoot(desktop, "72-admin-otp-verify")
    desktop.get_by_label("验证码").fill("000000")
    desktop.get_by_role("button", name="验证").click()
    expect(desktop.locator(".errorlist")).to_contain_text("验证码错误")
    desktop.wait_for_timeout(1100)  # django-otp's wait after one refusal: a second
    desktop.get_by_label("验证码").fill(codes[0])
    desktop.get_by_role("button", name="验证").click()
    expect(desktop.locator(".messagelist .warning")).to_contain_text("你用恢复码登录了，还剩 9 个")
    expect(desktop.get_by_test_id("dashboard")).to_be_visible()
    assert desktop.errors == []

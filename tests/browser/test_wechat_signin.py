"""Signing in inside WeChat's browser (its User-Agent), phone-sized: a bound WeChat needs no
password, a new visitor uses 微信快捷登录 and pays; the lockout page. Screenshots of each, on
a phone and on WeChat for computers (1366x900)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from devtools.wechat_sandbox.services import openid_for
from orders.models import RechargeOrder
from tests.browser.conftest import shoot
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI Language/zh_CN"
)
# WeChat for Windows opens 公众号 pages in its own browser, with MicroMessenger in its User-Agent too.
WECHAT_DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/81.0.4044.138 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
    "WindowsWechat(0x63090a13) XWEB/9129 Flue"
)
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "user_agent": WECHAT_UA}
DESKTOP = {"viewport": {"width": 1366, "height": 900}, "device_scale_factor": 1, "user_agent": WECHAT_DESKTOP_UA}


@pytest.fixture
def wechat(browser, live_server, settings):
    """open(person, size): a page in WeChat's browser for one sandbox person (their openid is
    openid_for(appid, person)), phone-sized unless `size` says otherwise."""
    settings.SITE_URL = live_server.url
    contexts = []

    def open_page(person: str, size: dict = PHONE):
        context = browser.new_context(locale="zh-CN", **size)
        context.set_default_timeout(15_000)
        context.add_cookies([{"name": "sandbox_wx_user", "value": person, "url": live_server.url}])
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def openid_for_person(person: str) -> str:
    return openid_for(settings.WECHAT_APPID, person)


def hold_next_submission(page) -> None:
    """The next form submission stays on the page, as if the server were slow to answer
    (the page's own submit handler runs first, at the form)."""
    page.evaluate("() => document.addEventListener('submit', (e) => e.preventDefault(), {once: true})")


def test_a_bound_user_signs_in_with_no_password(wechat, live_server):
    make_user("bound", openid=openid_for_person("wx-bound"))
    page = wechat("wx-bound")
    # /recharge/ -> sign-in page -> silent 网页授权 in the sandbox -> callback -> /recharge/
    page.goto(live_server.url + "/recharge/")
    expect(page.get_by_test_id("pay-button")).to_be_visible()
    expect(page.locator(".site-header__name")).to_have_text("bound")

    # After 退出登录 the page waits for a tap (it would otherwise sign straight back in)...
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_test_id("wechat-signin")).to_be_visible()
    expect(page.get_by_label("密码")).to_be_visible()
    shoot(page, "70-wechat-signin-after-logout")
    # ... and one tap signs in again, still with no password.
    page.get_by_test_id("wechat-signin").click()
    expect(page.get_by_test_id("pay-button")).to_be_visible()
    expect(page.locator(".site-header__name")).to_have_text("bound")


def test_a_new_visitor_uses_quick_login_lands_on_recharge_and_pays(wechat, live_server):
    page = wechat("wx-newcomer")
    page.goto(live_server.url + "/")
    # The silent check happens in redirects (nothing to see); this WeChat is nobody's yet.
    quick = page.get_by_test_id("wechat-quick-login")
    expect(quick).to_be_visible()
    expect(page.get_by_test_id("bind-notice")).to_have_text("登录后将绑定当前微信")
    expect(page.get_by_test_id("quick-login-tips")).to_contain_text("绑定当前微信")
    shoot(page, "71-wechat-signin-unbound")

    # While the quick login is on its way the button says so and cannot be pressed again.
    hold_next_submission(page)
    quick.click()
    expect(quick).to_be_disabled()
    expect(quick).to_have_text("登录中…")
    expect(page.get_by_test_id("password-login")).to_be_disabled()  # nor the other form
    shoot(page, "72-wechat-signin-busy")
    page.evaluate("() => document.querySelector('[data-testid=wechat-quick-login]').form.submit()")

    expect(page).to_have_url(re.compile(re.escape(live_server.url) + r"/recharge/"))
    page.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page
    user = User.objects.get()
    assert user.username.startswith("wx_") and not user.has_usable_password()
    assert user.openid == openid_for_person("wx-newcomer") and user.unionid

    page.get_by_role("radio", name="¥10", exact=True).check()
    page.get_by_test_id("pay-button").click()
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="支付", exact=True).click()
    expect(page.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥10.00")
    shoot(page, "73-wechat-quick-login-paid")
    order = RechargeOrder.objects.get()
    assert order.user == user and order.openid == user.openid and order.status == RechargeOrder.Status.PAID


def test_the_password_form_binds_an_existing_account_and_shows_it_is_busy(wechat, live_server):
    make_user("li")
    page = wechat("wx-li")
    page.goto(live_server.url + "/accounts/login/?next=/orders/")
    page.get_by_label("用户名").fill("li")
    page.get_by_label("密码").fill(PASSWORD)
    hold_next_submission(page)
    page.get_by_test_id("password-login").click()
    expect(page.get_by_test_id("password-login")).to_have_text("登录中…")
    expect(page.get_by_test_id("password-login")).to_be_disabled()
    page.evaluate("() => document.querySelector('[data-testid=password-login]').form.submit()")
    expect(page).to_have_url(re.compile(re.escape(live_server.url) + r"/orders/"))
    assert User.objects.get(username="li").openid == openid_for_person("wx-li")


def lock_out(name: str) -> None:
    """Five recent failures for `name`, as the sign-in form would have left them."""
    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.create(
        username=name,
        ip_address="127.0.0.1",
        user_agent="x",
        failures_since_start=5,
        get_data="",
        post_data="",
        http_accept="",
        path_info="/accounts/login/",
    )
    # attempt_time is set on creation: move it back as if the failures were two minutes ago.
    AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=timezone.now() - timedelta(minutes=2))


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_lockout_page_says_how_long_and_offers_ways_on(wechat, live_server, size):
    make_user("victim")
    lock_out("victim")
    page = wechat("wx-victim", PHONE if size == "phone" else DESKTOP)
    page.goto(live_server.url + "/accounts/login/?next=/orders/")
    if size == "desktop":
        shoot(page, "74-wechat-signin-unbound-desktop")
    page.get_by_label("用户名").fill("victim")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_test_id("password-login").click()
    expect(page.get_by_test_id("locked-out")).to_contain_text("victim")
    expect(page.get_by_test_id("lockout-wait")).to_have_text("请 13 分钟后再试。")
    expect(page.get_by_test_id("back-to-login")).to_be_visible()
    expect(page.get_by_role("link", name="返回首页")).to_be_visible()
    shoot(page, f"75-lockout-{size}")
    # Inside WeChat the lock on passwords does not stop WeChat itself.
    page.get_by_test_id("wechat-signin").click()
    expect(page.get_by_test_id("wechat-quick-login")).to_be_visible()


def test_outside_wechat_the_register_and_sign_in_buttons_say_they_are_working(wechat, live_server):
    page = wechat("nobody", {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2})
    page.goto(live_server.url + "/accounts/register/")
    page.get_by_label("用户名").fill("zhang")
    page.get_by_label("密码", exact=True).fill("tea-leaf-river-42")
    page.get_by_label("密码确认").fill("tea-leaf-river-42")
    hold_next_submission(page)
    page.get_by_role("button", name="注册").click()
    expect(page.get_by_role("button", name="注册中…")).to_be_disabled()
    page.evaluate("() => document.querySelector('form[data-busy-form]').submit()")
    expect(page).to_have_url(live_server.url + "/recharge/")

    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_test_id("wechat-signin")).to_have_count(0)  # not inside WeChat
    page.get_by_label("用户名").fill("zhang")
    page.get_by_label("密码").fill("tea-leaf-river-42")
    hold_next_submission(page)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.get_by_test_id("password-login")).to_have_text("登录中…")
    expect(page.get_by_test_id("password-login")).to_be_disabled()

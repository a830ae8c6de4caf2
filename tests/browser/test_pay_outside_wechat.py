"""Paying outside WeChat in Chromium (docs/paying.md), against the sandbox's WeChat app: a
desktop shows the order's QR code, a second page plays the phone that scans it, and the desktop
turns to 支付成功 by itself; a phone's browser goes through WeChat's H5 page and comes back to be
asked whether it paid; a phone without H5 saves or copies the QR code; a JSAPI order is not
paid outside WeChat. No Content-Security-Policy violation on any of these pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from orders.models import RechargeOrder
from tests.browser.conftest import open_page, shoot, sign_in_with_cookie
from tests.factories import make_order, make_user
from tests.payments.test_pay_pages import DESKTOP_UA, PHONE_UA, WECHAT_UA

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"viewport": {"width": 1366, "height": 900}, "user_agent": DESKTOP_UA}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
ORDER_PAGE = re.compile(r"/orders/(\d{26})/")


def csp_violations(page) -> list[str]:
    return [e for e in page.errors if "Content Security Policy" in e]


@pytest.fixture
def desktop(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    page = open_page(browser, **DESKTOP)
    yield page
    page.context.close()


@pytest.fixture
def safari(browser, live_server, settings):
    """A phone's own browser (Safari), outside WeChat."""
    settings.SITE_URL = live_server.url
    page = open_page(browser, **PHONE, user_agent=PHONE_UA)
    yield page
    page.context.close()


@pytest.fixture
def member(db):
    return make_user("chen-jing")


def sign_in(page, live_server, username: str, next_path: str = "/recharge/") -> None:
    sign_in_with_cookie(page, live_server, username, next_path)
    page.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page


def test_a_desktop_shows_the_qr_code_a_phone_scans_and_turns_to_paid_by_itself(
    desktop, browser, live_server, member, delivery_worker
):
    delivery_worker()
    sign_in(desktop, live_server, "chen-jing")
    expect(desktop.get_by_test_id("pay-method")).to_have_text("支付方式：微信扫码支付")
    desktop.get_by_role("radio", name="¥10", exact=True).check()
    desktop.get_by_test_id("pay-button").click()

    expect(desktop).to_have_url(ORDER_PAGE)
    qr = desktop.get_by_test_id("pay-qr")
    expect(qr.locator("svg")).to_be_visible()
    expect(desktop.get_by_test_id("pay-qr-amount")).to_have_text("¥10.00")
    expect(desktop.get_by_test_id("pay-qr-account")).to_have_text("chen-jing")
    expect(desktop.get_by_test_id("qr-countdown")).to_have_text(re.compile(r"^二维码 \d\d:\d\d 后失效$"))
    expect(qr).to_contain_text("请使用微信扫一扫，扫描二维码支付")
    expect(desktop.get_by_test_id("save-qr")).to_have_count(0)  # a desktop is scanned, not saved
    order = RechargeOrder.objects.get()
    assert order.trade_type == RechargeOrder.TradeType.NATIVE
    expect(desktop.get_by_test_id("order-no")).to_have_text(order.out_trade_no)
    before = desktop.get_by_test_id("qr-countdown").text_content()
    expect(desktop.get_by_test_id("qr-countdown")).not_to_have_text(before)  # it counts down
    desktop.evaluate("window.stillTheSamePage = true")
    shoot(desktop, "pay-desktop-native-order")

    # The sandbox's WeChat app scans the code: pick the sandbox WeChat, 确认支付.
    link = desktop.get_by_test_id("sandbox-scan")
    assert link.get_attribute("href") == order.pay_url
    scanner = open_page(browser, **PHONE, user_agent=WECHAT_UA)
    try:
        scanner.goto(order.pay_url)
        expect(scanner.get_by_test_id("phone-amount")).to_contain_text("10.00")
        scanner.get_by_test_id("phone-payers").get_by_role("radio").first.check()
        scanner.get_by_test_id("phone-pay").click()
        expect(scanner.get_by_test_id("phone-result")).to_have_attribute("data-state", "SUCCESS")
        assert csp_violations(scanner) == []
    finally:
        scanner.context.close()

    # The desktop's page sees it by itself: no reload, no click.
    expect(desktop.get_by_test_id("order-result")).to_have_text("支付成功", timeout=30_000)
    expect(desktop.get_by_test_id("order-desc")).to_contain_text("当前余额 ¥10.00")
    expect(desktop.get_by_test_id("header-balance")).to_have_text("¥10.00")
    expect(desktop.get_by_test_id("pay-qr")).to_have_count(0)
    assert desktop.evaluate("window.stillTheSamePage") is True
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.user.balance == 1000
    assert csp_violations(desktop) == []


def test_a_phone_pays_through_wechats_h5_page_and_is_asked_back_whether_it_paid(safari, live_server, member):
    """No notify is delivered here: what the page shows comes from asking WeChat (?paid=1)."""
    sign_in(safari, live_server, "chen-jing")
    expect(safari.get_by_test_id("pay-method")).to_have_text("支付方式：跳转微信支付")
    safari.get_by_role("radio", name="¥30", exact=True).check()
    safari.get_by_test_id("pay-button").click()

    # WeChat's H5 middle page (the sandbox's): first leave without paying.
    expect(safari).to_have_url(re.compile(r"/sandbox/h5/checkmweb\?"))
    expect(safari.get_by_test_id("phone-amount")).to_contain_text("30.00")
    safari.get_by_test_id("phone-cancel").click()
    expect(safari).to_have_url(re.compile(ORDER_PAGE.pattern + r"\?from=h5$"))
    dialog = safari.get_by_role("alertdialog", name="请确认微信支付是否已完成")
    expect(dialog).to_be_visible()
    shoot(safari, "pay-phone-h5-return")

    # 继续支付 goes back to WeChat's page for the same order, which now pays.
    dialog.get_by_role("button", name="继续支付").click()
    expect(safari).to_have_url(re.compile(r"/sandbox/h5/checkmweb\?"))
    safari.get_by_test_id("phone-payers").get_by_role("radio").first.check()
    safari.get_by_test_id("phone-pay").click()

    expect(safari).to_have_url(re.compile(ORDER_PAGE.pattern + r"\?from=h5$"))
    dialog = safari.get_by_role("alertdialog", name="请确认微信支付是否已完成")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="已完成支付").click()
    expect(safari.get_by_test_id("order-result")).to_have_text("支付成功")
    expect(safari.get_by_test_id("header-balance")).to_have_text("¥30.00")
    expect(safari.get_by_role("alertdialog")).to_have_count(0)
    order = RechargeOrder.objects.get()
    assert order.trade_type == RechargeOrder.TradeType.MWEB and order.status == RechargeOrder.Status.PAID
    assert csp_violations(safari) == []


def test_a_phone_without_h5_pay_saves_the_qr_code_or_copies_its_link(safari, live_server, member, settings):
    settings.WECHAT_H5_PAY = False
    safari.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(safari, live_server, "chen-jing")
    expect(safari.get_by_test_id("pay-method")).to_have_text("支付方式：微信扫码支付")
    safari.get_by_role("radio", name="¥10", exact=True).check()
    safari.get_by_test_id("pay-button").click()
    expect(safari.get_by_test_id("pay-qr").locator("svg")).to_be_visible()
    order = RechargeOrder.objects.get()

    with safari.expect_download() as download:
        safari.get_by_test_id("save-qr").click()
    assert download.value.suggested_filename == f"wxpay-{order.out_trade_no}.png"

    safari.get_by_test_id("copy-link").click()
    expect(safari.get_by_test_id("copy-status")).to_have_text("链接已复制")
    assert safari.evaluate("navigator.clipboard.readText()") == order.pay_url
    shoot(safari, "pay-phone-native-order")
    assert csp_violations(safari) == []


def test_without_a_clipboard_the_link_is_shown_to_copy_by_hand(safari, live_server, member, settings):
    settings.WECHAT_H5_PAY = False
    order = make_order(
        member,
        openid="",
        trade_type=RechargeOrder.TradeType.NATIVE,
        pay_url="weixin://wxpay/bizpayurl?pr=NoClipboard",
        pay_url_expires_at=timezone.now() + timedelta(minutes=10),
    )
    safari.add_init_script("Object.defineProperty(navigator, 'clipboard', { value: undefined })")
    sign_in(safari, live_server, "chen-jing", f"/orders/{order.out_trade_no}/")
    safari.get_by_test_id("copy-link").click()
    field = safari.get_by_test_id("pay-link").get_by_role("textbox")
    expect(field).to_be_visible()
    expect(field).to_have_value(order.pay_url)
    expect(field).to_be_focused()


def test_a_lapsing_qr_code_is_taken_off_the_page(desktop, live_server, member):
    soon = timezone.now() + timedelta(seconds=3)
    order = make_order(
        member,
        openid="",
        trade_type=RechargeOrder.TradeType.NATIVE,
        pay_url="weixin://wxpay/bizpayurl?pr=Lapsing",
        pay_url_expires_at=soon,
        expires_at=soon,
    )
    sign_in(desktop, live_server, "chen-jing", f"/orders/{order.out_trade_no}/")
    expect(desktop.get_by_test_id("pay-qr")).to_be_visible()
    expect(desktop.get_by_test_id("pay-qr")).to_have_count(0, timeout=15_000)
    expect(desktop.get_by_test_id("order-desc")).not_to_contain_text("扫码")
    assert csp_violations(desktop) == []


def test_outside_wechat_a_jsapi_order_says_to_open_it_in_wechat(desktop, live_server, member, settings):
    """Without the sandbox's stand-in cashier nothing would ever answer getBrandWCPayRequest."""
    settings.WECHAT_SANDBOX = False
    order = make_order(member, prepay_id="wx-prepay-1", prepay_expires_at=timezone.now() + timedelta(minutes=20))
    sign_in(desktop, live_server, "chen-jing", f"/orders/{order.out_trade_no}/")
    desktop.get_by_test_id("pay-again").click()
    expect(desktop.get_by_test_id("order-notice")).to_have_text("请在微信中打开此页面继续支付")
    expect(desktop.get_by_test_id("pay-again")).to_be_enabled()


# -- screenshots (SCREENSHOTS=1 SCREENSHOT_DIR=/tmp/shots): look at them -------------------------


@pytest.mark.parametrize("device", ["desktop", "phone", "wechat"])
def test_screenshots_of_the_recharge_page_and_a_native_order(browser, live_server, settings, device):
    settings.SITE_URL = live_server.url
    options = {"desktop": DESKTOP, "phone": {**PHONE, "user_agent": PHONE_UA}, "wechat": {**PHONE, "user_agent": WECHAT_UA}}
    page = open_page(browser, **options[device])
    try:
        user = make_user("chen-jing", openid="oChenJing00000000000000000001")
        order = make_order(
            user,
            amount=5000,
            openid="",
            trade_type=RechargeOrder.TradeType.NATIVE,
            pay_url=live_server.url + "/sandbox/native/bizpayurl?pr=ScreenshotOnly",
            pay_url_expires_at=timezone.now() + timedelta(minutes=15),
        )
        sign_in(page, live_server, "chen-jing")
        page.get_by_role("radio", name="¥50", exact=True).check()
        shoot(page, f"pay-{device}-recharge")
        page.goto(live_server.url + f"/orders/{order.out_trade_no}/")
        expect(page.get_by_test_id("pay-qr")).to_be_visible()
        shoot(page, f"pay-{device}-native-order")
        assert csp_violations(page) == []
    finally:
        page.context.close()


def test_inside_a_wechat_that_is_not_the_accounts_no_jsapi_is_offered_and_switching_signs_in_as_it(
    browser, live_server, settings
):
    """Signed in by password inside someone else's WeChat: the page says so, offers no 立即充值,
    and 退出，用当前微信登录 leaves the account for the one this WeChat is bound to."""
    from django.conf import settings as conf

    from devtools.wechat_sandbox.oauth import BROWSER_COOKIE
    from devtools.wechat_sandbox.services import openid_for

    settings.SITE_URL = live_server.url
    page = open_page(browser, **PHONE, user_agent=WECHAT_UA)
    page.context.add_cookies([{"name": BROWSER_COOKIE, "value": "xiaohong", "url": live_server.url}])
    make_user("xiaohong", openid=openid_for(conf.WECHAT_APPID, "xiaohong"))  # this WeChat's own account
    make_user("laowang", openid=openid_for(conf.WECHAT_APPID, "laowang"))  # bound to another WeChat
    sign_in_with_cookie(page, live_server, "laowang", "/recharge/")
    page.wait_for_load_state("load")

    expect(page.get_by_test_id("other-wechat")).to_contain_text("当前微信不是该账户绑定的微信")
    expect(page.get_by_text("立即充值")).to_have_count(0)
    expect(page.get_by_test_id("pay-method")).to_contain_text("微信扫码支付")
    shoot(page, "pay-wechat-other-account")

    page.get_by_test_id("switch-wechat").click()
    expect(page).to_have_url(re.compile(re.escape(live_server.url) + r"/recharge/(#wechat_redirect)?$"))
    expect(page.locator(".site-header__name")).to_have_text("xiaohong")
    expect(page.get_by_test_id("other-wechat")).to_have_count(0)
    expect(page.get_by_test_id("pay-button")).to_have_text("立即充值")
    assert csp_violations(page) == []
    page.context.close()

"""Two dead ends of the pay flow in Chromium: a payment WeChat took that the site could not
credit (支付已收到，正在确认: never 未扣款, never 继续支付, how to reach support, one line about
polling at a time), and an order WeChat refused to place (下单失败，未扣款, closed at once, in
the history as such). Screenshots on a phone in WeChat, a phone's browser and a desktop."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import RechargeOrder
from tests.browser.conftest import shoot, sign_in_with_cookie, wechat_member
from tests.factories import make_order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN"
)
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
DEVICES = {
    "wechat": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "user_agent": WECHAT_UA,
        "is_mobile": True,
        "has_touch": True,
    },
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "user_agent": PHONE_UA,
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop": {"viewport": {"width": 1366, "height": 900}},
}
ORDER_URL = re.compile(r"/orders/(\d{26})/\?result=ok$")


@pytest.fixture
def device(request, browser, live_server, settings):
    """A browser page as `request.param` (a key of DEVICES) sees the site; "wechat" unless parametrized."""
    settings.SITE_URL = live_server.url
    name = getattr(request, "param", "wechat")
    context = browser.new_context(locale="zh-CN", **DEVICES[name])
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.device_name = name
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.csp_violations = lambda: [e for e in errors if "Content Security Policy" in e]
    yield page
    context.close()


@pytest.fixture
def with_support(settings):
    settings.SUPPORT_PHONE = "400-800-1234"
    settings.SUPPORT_WECHAT = "wxrecharge_kefu"


def sheet(page):
    return page.get_by_role("dialog", name="微信支付")


def sign_in(page, live_server, username: str, path: str = "/recharge/") -> None:
    sign_in_with_cookie(page, live_server, username, path)
    page.wait_for_load_state("load")


def test_a_payment_wechat_took_but_could_not_be_credited_is_being_confirmed(device, live_server, with_support):
    page = device
    wechat_member(device, live_server, "wu")
    Fault.objects.create(out_trade_no="", report_total_fee=1)  # WeChat reports 0.01 for whatever is paid
    sign_in(page, live_server, "wu")
    page.get_by_role("radio", name="¥10", exact=True).check()
    page.get_by_test_id("pay-button").click()
    sheet(page).get_by_role("button", name="支付", exact=True).click()

    # The page's first check asks WeChat, which reports the other amount: not credited.
    expect(page).to_have_url(ORDER_URL)
    expect(page.get_by_test_id("order-result")).to_have_text("支付已收到，正在确认")
    order = RechargeOrder.objects.get()
    assert order.is_confirming and order.status == RechargeOrder.Status.PENDING
    view = page.get_by_test_id("order-view")
    expect(view).not_to_contain_text("未扣款")
    expect(page.get_by_test_id("pay-again")).to_have_count(0)
    expect(page.get_by_test_id("recharge-again")).to_have_count(0)
    expect(page.get_by_test_id("support")).to_contain_text("请联系客服：电话 400-800-1234，微信 wxrecharge_kefu")
    expect(page.get_by_test_id("support-order-no")).to_contain_text(order.out_trade_no)
    expect(page.get_by_test_id("order-poll")).to_have_text("到账后本页会自动更新。")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥0.00")
    shoot(page, "90-wechat-order-confirming")

    # Polling runs out on the page's fake clock: then it says so, and only that.
    page.clock.install()
    page.goto(live_server.url + f"/orders/{order.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("支付已收到，正在确认")
    for _ in range(12):  # nine checks, each after the previous answer: one a step
        page.clock.run_for(60_000)
        page.wait_for_timeout(250)
    expect(page.get_by_test_id("order-poll")).to_have_text("已停止自动查询。请稍后点「刷新」查看是否已到账。")
    expect(view).not_to_contain_text("自动更新")
    expect(view).not_to_contain_text("未扣款")
    shoot(page, "91-wechat-order-confirming-stopped")
    assert page.csp_violations() == []


def test_a_tap_on_an_order_wechat_refused_says_so_and_the_order_is_closed(device, live_server):
    page = device
    wechat_member(device, live_server, "zheng")
    Fault.objects.create(out_trade_no="", systemerror_endpoints="unifiedorder")
    sign_in(page, live_server, "zheng")
    page.get_by_role("radio", name="¥30", exact=True).check()
    page.get_by_test_id("pay-button").click()
    expect(page.get_by_test_id("recharge-error")).to_have_text("微信支付下单失败，未扣款，请稍后再试")
    expect(sheet(page)).to_have_count(0)
    order = RechargeOrder.objects.get()
    assert order.is_refused

    page.get_by_role("link", name="充值记录").click()
    row = page.locator(f'[data-out-trade-no="{order.out_trade_no}"]')
    expect(row).to_contain_text("下单失败，未扣款")
    row.click()
    expect(page.get_by_test_id("order-result")).to_have_text("下单失败，未扣款")
    expect(page.get_by_test_id("order-status")).to_have_text("下单失败，未扣款")
    expect(page.get_by_test_id("order-view")).not_to_contain_text("超过支付时间")
    expect(page.get_by_test_id("pay-again")).to_have_count(0)

    Fault.objects.all().delete()  # WeChat places orders again: 重新充值 pays a new one
    page.get_by_test_id("recharge-again").click()
    expect(page.get_by_role("radio", name="¥30", exact=True)).to_be_checked()
    page.get_by_test_id("pay-button").click()
    sheet(page).get_by_role("button", name="支付", exact=True).click()
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    assert RechargeOrder.objects.filter(status=RechargeOrder.Status.PAID).exclude(pk=order.pk).count() == 1
    assert Trade.objects.count() == 1  # the refused order never reached WeChat's books
    assert page.csp_violations() == []


@pytest.mark.parametrize("device", ["wechat", "phone", "desktop"], indirect=True)
def test_screenshots_of_the_dead_ends(device, live_server, with_support):
    page, name = device, device.device_name
    user = wechat_member(device, live_server, "feng")
    refused = make_order(
        user, amount=3000, status=RechargeOrder.Status.CLOSED, close_reason="refused", prepay_error="SYSTEMERROR"
    )
    confirming = make_order(user, amount=1000, paid_reported_at=timezone.now())
    sign_in(page, live_server, "feng", f"/orders/{confirming.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("支付已收到，正在确认")
    expect(page.get_by_test_id("support")).to_be_visible()
    shoot(page, f"92-{name}-order-confirming")
    page.goto(live_server.url + f"/orders/{refused.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("下单失败，未扣款")
    shoot(page, f"93-{name}-order-refused")
    page.goto(live_server.url + "/orders/")
    expect(page.get_by_test_id("orders")).to_contain_text("支付确认中")
    expect(page.get_by_test_id("orders")).to_contain_text("下单失败，未扣款")
    shoot(page, f"94-{name}-orders-dead-ends")
    assert page.csp_violations() == []

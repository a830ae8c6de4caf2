"""The order's page in Chromium, as WeChat's browser (its User-Agent, a phone) and a desktop
see it: an interrupted payment resumed from the history on the same order, a result that
survives a reload, a lapsed session, 完成, and no Content-Security-Policy violation anywhere
(pages, the sandbox cashier, the admin). Screenshots of each page go to screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone
from playwright.sync_api import expect

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Trade
from orders.models import RechargeOrder, Refund
from tests.browser.conftest import shoot, sign_in_with_cookie
from tests.factories import PASSWORD, make_order, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN"
)
ORDER_URL = re.compile(r"/orders/(\d{26})/(\?result=(ok|cancel|fail))?$")


class Console:
    """Errors the browser reports (a CSP violation is one), so a test can assert there were none."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e]


def new_page(browser, live_server, settings, **context):
    settings.SITE_URL = live_server.url
    ctx = browser.new_context(locale="zh-CN", **context)
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    page.console = Console(page)
    return page


@pytest.fixture
def phone(browser, live_server, settings):
    page = new_page(
        browser,
        live_server,
        settings,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        user_agent=WECHAT_UA,
        is_mobile=True,
        has_touch=True,
    )
    yield page
    page.context.close()


@pytest.fixture
def desktop(browser, live_server, settings):
    page = new_page(browser, live_server, settings, viewport={"width": 1366, "height": 900})
    yield page
    page.context.close()


def sign_in(page, live_server, username: str, next_path: str = "") -> None:
    """Signed in (the form has tests of its own), on `next_path` with its scripts run."""
    sign_in_with_cookie(page, live_server, username, next_path or "/recharge/")
    page.wait_for_load_state("load")


def sheet(page):
    return page.get_by_role("dialog", name="微信支付")


def order_no(page) -> str:
    return ORDER_URL.search(page.url).group(1)


def test_an_interrupted_payment_is_resumed_from_history_on_the_same_order(phone, live_server):
    page = phone
    make_user("wang")
    sign_in(page, live_server, "wang")
    page.get_by_role("radio", name="¥30", exact=True).check()
    page.get_by_test_id("pay-button").click()
    expect(sheet(page)).to_contain_text("30.00")
    sheet(page).get_by_role("button", name="取消").click()

    expect(page).to_have_url(ORDER_URL)
    number = order_no(page)
    expect(page.get_by_test_id("order-result")).to_have_text("已取消支付")
    expect(page.get_by_test_id("order-result")).to_be_focused()
    expect(page.get_by_test_id("order-status")).to_have_text("待支付")

    page.get_by_role("link", name="充值记录").click()
    page.locator(f'[data-out-trade-no="{number}"]').click()
    expect(page).to_have_url(live_server.url + f"/orders/{number}/")
    expect(page.get_by_test_id("order-result")).to_have_text("待支付")
    page.get_by_test_id("pay-again").click()
    expect(sheet(page)).to_contain_text("30.00")
    sheet(page).get_by_role("button", name="支付", exact=True).click()

    expect(page).to_have_url(live_server.url + f"/orders/{number}/?result=ok")
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    expect(page.get_by_test_id("order-desc")).to_contain_text("当前余额 ¥30.00")
    expect(page.get_by_test_id("header-balance")).to_have_text("¥30.00")
    page.reload()
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    order = RechargeOrder.objects.get()  # one order, paid once, on the first number
    assert order.out_trade_no == number and order.status == RechargeOrder.Status.PAID
    assert Trade.objects.count() == 1
    assert page.console.csp_violations() == []


def test_a_failed_payment_says_why_once_and_a_reload_keeps_it(phone, live_server):
    page = phone
    make_user("zhou")
    sign_in(page, live_server, "zhou")
    page.locator("#amount").fill("12.34")
    expect(page.get_by_role("radio", checked=True)).to_have_count(0)
    page.get_by_test_id("pay-button").click()
    sheet(page).get_by_role("button", name="模拟支付失败").click()

    expect(page).to_have_url(ORDER_URL)
    for _ in range(2):
        expect(page.get_by_test_id("order-result")).to_have_text("支付未完成")
        expect(page.get_by_test_id("pay-error")).to_have_text("支付失败（沙箱模拟：银行卡被拒）")
        expect(page.locator("body")).not_to_contain_text("支付失败：")
        expect(page.get_by_test_id("pay-again")).to_be_visible()
        page.reload()
    assert RechargeOrder.objects.get().status == RechargeOrder.Status.PENDING


def test_the_page_notices_when_a_pending_order_is_paid_and_says_so(phone, live_server):
    page = phone
    make_user("chen")
    sign_in(page, live_server, "chen")
    page.get_by_role("radio", name="¥10", exact=True).check()
    page.get_by_test_id("pay-button").click()
    sheet(page).get_by_role("button", name="取消").click()
    expect(page.get_by_test_id("order-result")).to_have_text("已取消支付")
    shoot(page, "51-phone-order-pending")

    trade = Trade.objects.get()
    sandbox_services.pay(trade.prepay_id, trade.appid)  # paid from elsewhere; no notify is delivered
    # The page keeps asking (1, 2, 3, 5 s...); the server asks WeChat at most every 5 s.
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功", timeout=20_000)
    expect(page.get_by_test_id("order-result")).to_be_focused()
    expect(page.get_by_test_id("header-balance")).to_have_text("¥10.00")
    expect(page.get_by_test_id("pay-again")).to_have_count(0)


def test_a_pending_order_is_checked_at_growing_intervals_then_the_page_stops_and_says_so(phone, live_server):
    page = phone
    user = make_user("qian")
    order = make_order(user, prepay_id="wx-prepay", prepay_expires_at=timezone.now() + timezone.timedelta(minutes=20))
    checks: list[str] = []
    # Checks that got their answer (Chromium may resend a request whose connection the test
    # server closed: that is one check, not two).
    page.on("requestfinished", lambda r: "/status/" in r.url and checks.append(r.url))
    sign_in(page, live_server, "qian", f"/orders/{order.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("待支付")
    page.goto("about:blank")  # no timer of that page is left to fire
    page.wait_for_timeout(300)  # and no event of its checks is still on its way
    checks.clear()
    # The page's own count of the status checks it starts and of those answered, kept by a
    # wrapper around fetch: read right after each fake second, it says at once whether that
    # second started a check, with no real-time wait on the seconds that did not.
    page.add_init_script("""(() => {
      const fetch = window.fetch;
      window.__checks = {started: 0, answered: 0};
      window.fetch = function (url, init) {
        const status = String(url).includes('/status/');
        if (status) { window.__checks.started++; }
        const answer = fetch.call(this, url, init);
        if (status) { answer.finally(() => { window.__checks.answered++; }); }
        return answer;
      };
    })()""")
    page.clock.install()  # the page's timers now run only when the test says
    page.goto(live_server.url + f"/orders/{order.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("待支付")
    # 1, 2, 3, 5, 8, 13, 21, 34, 55 s, then no more: the page's fake clock, a second at a time.
    seconds: list[int] = []
    for second in range(1, 181):
        page.clock.run_for(1000)
        counts = page.evaluate("window.__checks")
        if counts["started"] > len(seconds):
            seconds += [second] * (counts["started"] - len(seconds))
            while counts["answered"] < counts["started"]:  # the answer comes in real time
                page.wait_for_timeout(10)
                counts = page.evaluate("window.__checks")
            page.wait_for_timeout(50)  # the page reads it and sets its next check
    expect(page.get_by_test_id("order-poll")).to_contain_text("已停止自动查询")
    # Each check waits its delay after the previous answer: 1, +2, +3, +5, … +55 s.
    assert seconds == [1, 3, 6, 11, 19, 32, 53, 87, 142], seconds
    count = len(checks)
    page.get_by_test_id("refresh").click()  # 刷新 asks now, and starts checking again
    expect(page.get_by_test_id("order-poll")).to_contain_text("还没有收到支付结果")
    assert len(checks) > count


def test_pay_again_after_the_session_lapsed_leads_to_sign_in_and_back(desktop, live_server):
    # On a desktop browser (inside WeChat, 网页授权 signs a bound user in again by itself).
    page = desktop
    make_user("sun", openid="oSun0000000000000000000000001")
    sign_in(page, live_server, "sun")
    page.get_by_test_id("pay-button").click()  # no amount
    expect(page.get_by_test_id("recharge-error")).to_be_focused()
    page.locator("#amount").fill("5")
    page.get_by_test_id("pay-button").click()
    # A desktop pays by scanning a QR code (docs/paying.md): the order's page shows it.
    expect(page).to_have_url(re.compile(r"/orders/\d{26}/$"))
    expect(page.get_by_test_id("pay-qr")).to_be_visible()
    number = page.url.rstrip("/").rsplit("/", 1)[1]
    # The QR code lapses while the order may still be paid: 继续支付 asks WeChat for a new one.
    RechargeOrder.objects.filter(out_trade_no=number).update(pay_url_expires_at=timezone.now() - timedelta(seconds=1))
    page.reload()

    Session.objects.all().delete()  # the session lapses; the CSRF cookie stays, as it does
    page.get_by_test_id("pay-again").click()
    expect(page).to_have_url(live_server.url + f"/accounts/login/?next=%2Forders%2F{number}%2F")
    page.get_by_label("用户名").fill("sun")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page).to_have_url(live_server.url + f"/orders/{number}/")
    expect(page.get_by_test_id("pay-again")).to_be_visible()


def test_a_stale_csrf_token_is_explained_on_the_page(phone, live_server):
    page = phone
    user = make_user("he")
    order = make_order(user, prepay_id="wx-prepay", prepay_expires_at=timezone.now() + timezone.timedelta(minutes=20))
    sign_in(page, live_server, "he", f"/orders/{order.out_trade_no}/")
    page.evaluate("document.querySelectorAll('[name=csrfmiddlewaretoken]').forEach(f => f.value = 'stale')")
    page.context.clear_cookies(name="csrftoken")
    page.get_by_test_id("pay-again").click()
    expect(page.get_by_test_id("order-notice")).to_have_text("页面已过期，请刷新后重试")
    expect(page.get_by_test_id("order-notice")).to_be_focused()


def test_done_closes_the_page_inside_wechat_and_goes_to_recharge_elsewhere(phone, desktop, live_server):
    user = make_user("lin", openid="oLin0000000000000000000000001")
    order = make_order(user, amount=1000)
    order.pay("4200000000000000000000000000001", 1000, timezone.now())
    # WeChat's own bridge (no sandbox cashier): 完成 asks it to close the window.
    phone.add_init_script(
        "window.WeixinJSBridge = {invoke: function () {}, call: function (name) { window.closedWith = name; }};"
    )
    sign_in(phone, live_server, "lin", f"/orders/{order.out_trade_no}/")
    expect(phone.get_by_test_id("order-result")).to_have_text("支付成功")
    phone.get_by_test_id("done").click()
    assert phone.evaluate("window.closedWith") == "closeWindow"
    assert phone.url.endswith(f"/orders/{order.out_trade_no}/")

    sign_in(desktop, live_server, "lin", f"/orders/{order.out_trade_no}/")
    desktop.get_by_test_id("done").click()
    expect(desktop).to_have_url(live_server.url + "/recharge/")


def test_the_admin_and_the_sandbox_run_under_the_policy(desktop, live_server):
    from accounts.models import User

    admin = User.objects.create_superuser("boss", password=PASSWORD)
    user = make_user("pay", openid="oPay0000000000000000000000001")
    order = make_order(user, amount=1000)
    desktop.goto(live_server.url + "/admin/login/")
    desktop.get_by_label("用户名").fill(admin.username)
    desktop.get_by_label("密码").fill(PASSWORD)
    desktop.get_by_role("button", name="登录", exact=True).click()
    for path in (
        "/admin/",
        "/admin/orders/rechargeorder/",
        f"/admin/orders/rechargeorder/{order.pk}/change/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/orders/ledgerentry/",
        "/sandbox/",
    ):
        desktop.goto(live_server.url + path)
        expect(desktop.locator("body")).to_be_visible()
    assert desktop.console.csp_violations() == []


# -- screenshots: look at them ---------------------------------------------------------------------------------------


def _refunded_order(user) -> RechargeOrder:
    order = make_order(user, amount=5000)
    order.pay("4200000000000000000000000000002", 5000, timezone.now())
    order.refresh_from_db()
    order.start_refund(2000, "用户申请退款").settle(Refund.Status.SUCCESS)
    order.start_refund(500, "用户申请退款")  # still 退款中
    return order


@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_screenshots_of_every_page(request, device, live_server):
    page = request.getfixturevalue(device)
    prefix = "5" if device == "phone" else "6"
    user = make_user("xiaoming")
    refunded = _refunded_order(user)
    paid = make_order(user, amount=3000)
    paid.pay("4200000000000000000000000000003", 3000, timezone.now())
    sign_in(page, live_server, "xiaoming")
    page.get_by_role("radio", name="¥50", exact=True).check()
    expect(page.get_by_role("radio", name="¥50", exact=True)).to_be_checked()
    shoot(page, f"{prefix}0-{device}-recharge")
    page.get_by_test_id("pay-button").click()
    if device == "desktop":
        # A desktop pays by scanning the order's QR code (no WeChat needed on this browser).
        expect(page.get_by_test_id("pay-qr")).to_be_visible()
    else:
        sheet(page).get_by_role("button", name="取消").click()
        expect(page.get_by_test_id("order-result")).to_have_text("已取消支付")
    shoot(page, f"{prefix}1-{device}-order-pending")
    page.goto(live_server.url + f"/orders/{paid.out_trade_no}/?result=ok")
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    shoot(page, f"{prefix}2-{device}-order-paid")
    page.goto(live_server.url + f"/orders/{refunded.out_trade_no}/")
    expect(page.get_by_test_id("order-result")).to_have_text("部分退款")
    shoot(page, f"{prefix}3-{device}-order-refunded")
    page.goto(live_server.url + "/orders/")
    expect(page.get_by_test_id("orders")).to_be_visible()
    shoot(page, f"{prefix}4-{device}-orders")
    response = page.goto(live_server.url + "/orders/NOSUCHORDER/")
    assert response.status == 404
    expect(page.get_by_test_id("error-page")).to_contain_text("页面不存在")
    shoot(page, f"{prefix}5-{device}-404")
    assert page.console.csp_violations() == []

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox.models import Fault, Trade
from tests.browser.conftest import shoot, sign_in_with_cookie
from tests.factories import make_user
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import cashier_pay, pay_params

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI Language/zh_CN"
)

INVOKE = """params => {
  window.payResult = null;
  const go = () => WeixinJSBridge.invoke('getBrandWCPayRequest', params, res => { window.payResult = res; });
  if (typeof WeixinJSBridge === 'undefined') document.addEventListener('WeixinJSBridgeReady', go); else go();
}"""


def invoke(page, params):
    page.evaluate(INVOKE, params)


def result(page, timeout=15.0):
    # Polled from here: wait_for_function evaluates a string in the page, which the site's
    # Content-Security-Policy (no 'unsafe-eval') refuses.
    for _ in range(int(timeout * 10)):
        answer = page.evaluate("window.payResult")
        if answer:
            return answer
        page.wait_for_timeout(100)
    raise AssertionError("the cashier did not answer")


def sign_in(page, live_server):
    make_user("payer")
    sign_in_with_cookie(page, live_server, "payer")
    expect(page.get_by_test_id("balance")).to_be_visible()


def test_the_cashier_sheet_pays_and_answers_ok(page, live_server, wxpay, screenshot):
    sign_in(page, live_server)
    prepay_id = create_order(wxpay, "B1", total_fee=1990)["prepay_id"]
    invoke(page, pay_params(prepay_id))
    sheet = page.get_by_role("dialog", name="微信支付")
    expect(sheet.get_by_test_id("cashier-amount")).to_have_text("¥19.90")
    expect(sheet).to_contain_text("沙箱商户")
    expect(sheet).to_contain_text("余额充值")
    # Laid out as WeChat's sheet: 支付 across the sheet, 取消 and 模拟支付失败 side by side under it.
    # (measured in one frame: the sheet slides up as it opens)
    pay, cancel, fail = page.evaluate("""() => [...document.querySelectorAll('[role=dialog] .weui-btn')]
        .map(b => { const r = b.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })""")
    assert [b.inner_text() for b in sheet.locator(".weui-btn").all()] == ["支付", "取消", "模拟支付失败"]
    assert pay["width"] > 300 and abs(cancel["x"] - pay["x"]) < 1
    assert abs((fail["x"] + fail["width"]) - (pay["x"] + pay["width"])) < 1
    # Sub-pixel tolerance throughout: another Chromium or font may lay out at 48.00006 px.
    assert abs(cancel["y"] - fail["y"]) < 1 and cancel["y"] > pay["y"] + pay["height"]
    assert abs(cancel["width"] - fail["width"]) < 1
    assert abs(cancel["height"] - pay["height"]) < 1 and abs(fail["height"] - pay["height"]) < 1
    page.evaluate("() => Promise.all(document.getAnimations().map(a => a.finished))")  # the sheet has slid up
    screenshot("10-sandbox-cashier")
    sheet.get_by_role("button", name="支付", exact=True).click()
    assert result(page) == {"err_msg": "get_brand_wcpay_request:ok"}
    expect(sheet).to_have_count(0)
    assert Trade.objects.get(out_trade_no="B1").state == Trade.SUCCESS


def test_the_cashier_can_cancel_and_fail(page, live_server, wxpay):
    sign_in(page, live_server)
    prepay_id = create_order(wxpay, "B2")["prepay_id"]
    invoke(page, pay_params(prepay_id))
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="取消").click()
    assert result(page) == {"err_msg": "get_brand_wcpay_request:cancel"}
    invoke(page, pay_params(prepay_id))
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="关闭").click()  # the × at the top
    assert result(page) == {"err_msg": "get_brand_wcpay_request:cancel"}
    invoke(page, pay_params(prepay_id))
    page.get_by_role("button", name="模拟支付失败").click()
    assert result(page)["err_msg"] == "get_brand_wcpay_request:fail"
    invoke(page, pay_params(prepay_id, key="0" * 32))
    page.get_by_role("button", name="支付", exact=True).click()
    assert result(page) == {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "支付验证签名失败"}
    assert Trade.objects.get(out_trade_no="B2").state == Trade.NOTPAY


@pytest.fixture
def wechat_page(browser, live_server, settings):
    """A phone in WeChat's browser (390x844, WeChat's User-Agent)."""
    settings.SITE_URL = live_server.url
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        locale="zh-CN",
        user_agent=WECHAT_UA,
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_the_dashboard_reads_well_on_a_phone_in_wechat(wechat_page, live_server, wxpay, sandbox_url, receiver):
    page = wechat_page
    merchant = receiver()
    create_order(wxpay, "B3")
    cashier_pay(sandbox_url, pay_params(create_order(wxpay, "B4", notify_url=merchant.url)["prepay_id"]))
    sandbox_delivery.deliver_due()
    Fault.objects.create(out_trade_no="", drop_notifies=2, corrupt_signature=True)
    page.goto(live_server.url + "/sandbox/")
    trades = page.get_by_test_id("trades")
    expect(trades).to_contain_text("B3")
    expect(trades).to_contain_text("SUCCESS 支付成功")
    # Nothing wider than the phone; WeChat's codes on one line, not broken letter by letter.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    chip = trades.locator(".sbx-state_SUCCESS").first
    assert chip.bounding_box()["height"] < 2 * float(chip.evaluate("e => getComputedStyle(e).lineHeight")[:-2])
    # The merchant's answer opens in full, wrapped inside the card.
    trades.locator("details.sbx-attempt summary").first.click()
    answer = trades.locator("pre.sbx-pre").first
    expect(answer).to_contain_text("<return_code>")
    assert answer.bounding_box()["x"] + answer.bounding_box()["width"] <= 390.5
    shoot(page, "11-sandbox-dashboard")


def test_the_dashboard_on_a_desktop_keeps_a_table(browser, live_server, wxpay, settings):
    settings.SITE_URL = live_server.url
    create_order(wxpay, "B5")
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.goto(live_server.url + "/sandbox/")
    expect(page.get_by_role("columnheader", name="交易状态")).to_be_visible()
    shoot(page, "12-sandbox-dashboard-desktop")
    context.close()


def test_reset_all_faults_asks_first_then_turns_every_switch_off(wechat_page, live_server):
    page = wechat_page
    Fault.objects.create(out_trade_no="", drop_notifies=1)
    Fault.objects.create(out_trade_no="B6", corrupt_signature=True)
    page.goto(live_server.url + "/sandbox/")
    reset = page.get_by_role("button", name="重置全部故障开关")
    page.once("dialog", lambda dialog: dialog.dismiss())
    reset.click()
    expect(page.get_by_test_id("faults")).to_contain_text("B6")
    assert Fault.objects.count() == 2
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    reset.click()
    expect(page.get_by_text("已重置全部故障开关（删除 2 条）")).to_be_visible()
    assert questions == ["删除全部 2 条故障开关，让沙箱一切照常？"] and not Fault.objects.exists()
    expect(page.get_by_role("button", name="重置全部故障开关")).to_be_disabled()

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from sandbox.models import Trade
from tests.factories import make_user
from tests.helpers import create_order
from tests.sandbox.test_cashier_and_notify import pay_params

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INVOKE = """params => {
  window.payResult = null;
  const go = () => WeixinJSBridge.invoke('getBrandWCPayRequest', params, res => { window.payResult = res; });
  if (typeof WeixinJSBridge === 'undefined') document.addEventListener('WeixinJSBridgeReady', go); else go();
}"""


def invoke(page, params):
    page.evaluate(INVOKE, params)


def result(page):
    return page.wait_for_function("window.payResult").json_value()


def sign_in(page, live_server):
    make_user("payer")
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("用户名").fill("payer")
    page.get_by_label("密码").fill("correct-horse-battery-9")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_test_id("balance")).to_be_visible()


def test_the_cashier_sheet_pays_and_answers_ok(page, live_server, wxpay, screenshot):
    sign_in(page, live_server)
    prepay_id = create_order(wxpay, "B1", total_fee=1990)["prepay_id"]
    invoke(page, pay_params(prepay_id))
    sheet = page.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥19.90")
    expect(sheet).to_contain_text("余额充值")
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
    page.get_by_role("button", name="模拟支付失败").click()
    assert result(page)["err_msg"] == "get_brand_wcpay_request:fail"
    invoke(page, pay_params(prepay_id, key="0" * 32))
    page.get_by_role("button", name="支付", exact=True).click()
    assert result(page) == {"err_msg": "get_brand_wcpay_request:fail", "err_desc": "支付验证签名失败"}
    assert Trade.objects.get(out_trade_no="B2").state == Trade.NOTPAY


def test_the_dashboard_looks_like_a_wechat_page(page, live_server, wxpay, screenshot):
    create_order(wxpay, "B3")
    page.goto(live_server.url + "/sandbox/")
    expect(page.get_by_test_id("trades")).to_contain_text("B3")
    screenshot("11-sandbox-dashboard")

"""Recharge, then spend, end to end in Chromium: a member recharges ¥30 on their phone in
WeChat through the sandbox's cashier, shows the pay code, and the sandbox's counter (the
cashier's desktop) charges ¥12.50 with it through the merchant API; the phone says 支付成功,
余额明细 has both lines, and the sandbox's webhook receiver got recharge.succeeded and
charge.succeeded, both signed right."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from devtools.wechat_sandbox.models import Delivery as Notify
from orders.models import RechargeOrder
from outbox import delivery
from outbox.models import Delivery as WebhookDelivery
from outbox.models import WebhookEndpoint
from payments.models import Notification
from tests.browser.conftest import shoot, sign_in_with_cookie, wait_until, wechat_member
from wallet.models import Charge

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_recharges_thirty_and_spends_twelve_fifty_at_the_counter(phone, desk, live_server, delivery_worker):
    member = wechat_member(phone, live_server, "spender")
    delivery_worker()  # the sandbox's notifies of payments, as `make run` delivers them

    # The counter sets itself up on first use (an API client, a webhook endpoint): before the
    # recharge, since an endpoint hears only of events made after it was added.
    desk.goto(live_server.url + "/sandbox/pos/")
    expect(desk.get_by_text("还没有消费。")).to_be_visible()
    assert WebhookEndpoint.objects.filter(url=live_server.url + "/sandbox/webhooks/receive").exists()

    # ¥30 on the phone, paid in the sandbox's cashier.
    sign_in_with_cookie(phone, live_server, member.username, "/recharge/")
    phone.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page
    expect(phone.get_by_test_id("balance")).to_have_text("¥0.00")
    phone.get_by_role("radio", name="¥30", exact=True).check()
    expect(phone.locator("#amount")).to_have_value("30")
    phone.get_by_test_id("pay-button").click()
    sheet = phone.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥30.00")
    shoot(phone, "spend-1-cashier")
    sheet.get_by_role("button", name="支付", exact=True).click()
    expect(phone).to_have_url(re.compile(r"/orders/\d{26}/\?result=ok$"))
    expect(phone.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(phone.get_by_test_id("order-result")).to_have_text("支付成功")
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥30.00")
    order = RechargeOrder.objects.get()
    # The sandbox's notify reaches the site (the order page may have credited it first: then
    # the notify is a duplicate).
    assert wait_until(lambda: Notify.objects.filter(state=Notify.DELIVERED).exists()), list(Notify.objects.values())
    assert Notification.objects.filter(
        out_trade_no=order.out_trade_no, signature_valid=True, outcome__in=["applied", "duplicate"]
    ).exists()
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.amount == 3000

    # The pay code, read off the phone's screen by the cashier.
    phone.goto(live_server.url + "/wallet/code/")
    phone.wait_for_load_state("load")
    code = phone.get_by_test_id("paycode").get_attribute("data-code")
    assert re.fullmatch(r"88\d{16}", code), code
    digits = phone.get_by_test_id("code-digits")
    expect(digits).to_have_text(" ".join(code[i : i + 4] for i in range(0, len(code), 4)))
    expect(phone.get_by_test_id("balance")).to_have_text("¥30.00")
    shoot(phone, "spend-2-paycode")

    desk.get_by_label("会员码").fill(digits.inner_text())  # as shown, in fours: the counter drops the spaces
    desk.get_by_label("金额（元）").fill("12.50")
    desk.get_by_label("说明").fill("拿铁")
    desk.get_by_test_id("charge").click()
    result = desk.get_by_test_id("counter-result")
    expect(result.locator(".weui-msg__title")).to_have_text("扣款成功 ¥12.50")
    expect(result).to_contain_text("会员余额 ¥17.50")
    charge = Charge.objects.get()
    assert (charge.amount, charge.store, charge.description, charge.member_code.code) == (1250, "沙箱门店", "拿铁", code)
    expect(result).to_contain_text(f"消费单号 {charge.number}")
    expect(desk.get_by_test_id("counter-charges")).to_contain_text("¥12.50")
    shoot(desk, "spend-3-counter")

    # The phone, asking every few moments (quick_code_polls), turns into 支付成功.
    expect(phone.get_by_test_id("paid-title")).to_be_visible(timeout=8_000)
    expect(phone.get_by_test_id("paid-title")).to_have_text("支付成功")
    expect(phone.get_by_test_id("paycode-show")).to_be_hidden()
    expect(phone.get_by_test_id("paid-amount")).to_have_text("¥12.50")
    expect(phone.get_by_test_id("paid-where")).to_have_text("沙箱门店 · 拿铁")
    expect(phone.get_by_test_id("paid-balance")).to_have_text("当前余额 ¥17.50")
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥17.50")
    shoot(phone, "spend-4-paid")

    # 余额明细: the spend, then the recharge (newest first).
    phone.get_by_test_id("link-statement").click()
    expect(phone).to_have_url(live_server.url + "/wallet/statement/")
    expect(phone.get_by_test_id("balance")).to_have_text("¥17.50")
    entries = phone.get_by_test_id("entry")
    expect(entries).to_have_count(2)
    expect(entries.get_by_test_id("entry-title")).to_have_text(["消费 · 沙箱门店", "充值"])
    expect(entries.get_by_test_id("entry-amount")).to_have_text(["-¥12.50", "+¥30.00"])
    expect(entries.get_by_test_id("entry-balance")).to_have_text(["余额 ¥17.50", "余额 ¥30.00"])
    expect(entries.nth(0)).to_have_attribute("data-kind", "spend")
    expect(entries.nth(1)).to_have_attribute("data-kind", "recharge")
    shoot(phone, "spend-5-statement")

    # The webhooks, delivered (no delivery worker runs in tests), each signed right.
    assert delivery.run_pass() == 2
    assert sorted(WebhookDelivery.objects.values_list("event__type", "status")) == [
        ("charge.succeeded", WebhookDelivery.Status.SUCCEEDED),
        ("recharge.succeeded", WebhookDelivery.Status.SUCCEEDED),
    ]
    desk.goto(live_server.url + "/sandbox/webhooks/")
    receipts = desk.locator("details.sbx-receipt")
    expect(receipts).to_have_count(2)
    for event, amount, balance in (("recharge.succeeded", 3000, 3000), ("charge.succeeded", 1250, 1750)):
        receipt = desk.locator(f'details.sbx-receipt[data-event="{event}"]')
        expect(receipt).to_have_count(1)
        expect(receipt).to_have_attribute("data-valid", "1")
        expect(receipt.locator("summary")).to_contain_text("签名有效")
        receipt.locator("summary").click()
        body = receipt.locator("pre")
        expect(body).to_be_visible()
        expect(body).to_contain_text(f'"member_id": {member.pk}')
        expect(body).to_contain_text(f'"amount": {amount}')
        expect(body).to_contain_text(f'"balance": {balance}')
    expect(desk.get_by_text("签名无效")).to_have_count(0)
    shoot(desk, "spend-6-webhooks")

    assert phone.errors == [] and desk.errors == []

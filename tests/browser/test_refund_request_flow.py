"""申请退款, end to end in Chromium (docs/stored-value.md's worked example): a member buys
充100送20 on their phone in WeChat and pays in the sandbox's cashier (¥120.00), spends ¥60.00
at the sandbox's counter with their member code, then asks for their money back from 余额明细:
the page says 可退 ¥50.00, 扣回赠送 ¥10.00, 退款后余额 ¥0.00, and the request waits (待审核: the
recharge was used, so it is not approved by itself). An operator on a desktop sees it counted
on the admin's start page, approves it; the refund goes to the sandbox, settles there and its
notify comes back; the member sees 退款 ¥50.00 · 退款成功, 充值退款 -¥50.00 and 赠送扣回 -¥10.00
on the statement, and ¥0.00."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import User
from offers.models import Package
from orders.models import RechargeOrder, Refund
from payments.refund_requests import RefundRequest
from tests.browser.conftest import shoot, sign_in_with_cookie, wait_until, wechat_member, why_refund_not_settled
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_asks_for_the_unspent_money_back_and_an_operator_approves(phone, desk, live_server, delivery_worker, settings):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0.01  # the sandbox settles a refund 0.05 s after accepting it
    delivery_worker()  # the sandbox's notifies (payments, refunds), as `make run` delivers them
    # What an operator has on sale (made in the admin; tests/browser/test_packages.py drives that).
    Package.objects.create(name="充100送20", price=10000, bonus=2000, bonus_valid_days=365, position=1)
    member = wechat_member(phone, live_server, "tuikuan")
    User.objects.create_superuser("shenhe", password=PASSWORD)

    # 1. 充100送20 on the phone, paid in the sandbox's cashier: ¥120.00.
    sign_in_with_cookie(phone, live_server, member.username, "/recharge/")
    phone.wait_for_load_state("load")  # its scripts run: a tap before them only reloads the page
    hundred = phone.get_by_role("radiogroup", name="选择充值金额").get_by_role("radio", name="¥100 送 ¥20", exact=True)
    hundred.check()
    expect(phone.get_by_test_id("package-hint")).to_have_text("支付 ¥100.00，到账 ¥120.00 · 赠送 365 天内有效")
    phone.get_by_test_id("pay-button").click()
    sheet = phone.get_by_role("dialog", name="微信支付")
    expect(sheet).to_contain_text("¥100.00")
    sheet.get_by_role("button", name="支付", exact=True).click()
    expect(phone).to_have_url(re.compile(r"/orders/\d{26}/\?result=ok$"))
    expect(phone.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥120.00")

    phone.goto(live_server.url + "/wallet/statement/")
    expect(phone.get_by_test_id("balance")).to_have_text("¥120.00")
    entries = phone.get_by_test_id("entry")
    expect(entries).to_have_count(2)
    expect(entries.get_by_test_id("entry-title")).to_have_text([re.compile(r"^赠送 · "), "充值"])
    expect(entries.get_by_test_id("entry-amount")).to_have_text(["+¥20.00", "+¥100.00"])
    expect(entries.get_by_test_id("entry-balance")).to_have_text(["余额 ¥120.00", "余额 ¥100.00"])

    # 2. ¥60.00 at the sandbox's counter, with the member code read off the phone.
    desk.goto(live_server.url + "/sandbox/pos/")
    phone.goto(live_server.url + "/wallet/code/")
    phone.wait_for_load_state("load")
    digits = phone.get_by_test_id("code-digits")
    expect(digits).to_have_text(re.compile(r"^88\d\d( \d{4}){3} \d\d$"))  # 18 digits, in fours
    desk.get_by_label("会员码").fill(digits.inner_text())
    desk.get_by_label("金额（元）").fill("60.00")
    desk.get_by_label("说明").fill("会员餐")
    desk.get_by_test_id("charge").click()
    result = desk.get_by_test_id("counter-result")
    expect(result.locator(".weui-msg__title")).to_have_text("扣款成功 ¥60.00")
    expect(result).to_contain_text("会员余额 ¥60.00")
    expect(phone.get_by_test_id("paid-title")).to_have_text("支付成功", timeout=8_000)  # the phone asks every few moments
    expect(phone.get_by_test_id("paid-balance")).to_have_text("当前余额 ¥60.00")

    # 3. 余额明细 → 申请退款: what comes back, what goes with it, what is left; a reason; 待审核.
    phone.get_by_test_id("link-statement").click()
    expect(phone).to_have_url(live_server.url + "/wallet/statement/")
    expect(phone.get_by_test_id("entry").get_by_test_id("entry-amount")).to_have_text(["-¥60.00", "+¥20.00", "+¥100.00"])
    phone.get_by_test_id("refund-request-link").click()
    expect(phone).to_have_url(live_server.url + "/wallet/refund/")
    expect(phone.get_by_test_id("balance")).to_have_text("¥60.00")
    part = phone.get_by_test_id("refund-part")
    expect(part).to_have_count(1)
    expect(part).to_contain_text("充值 ¥100.00 · 赠送 ¥20.00")
    expect(part).to_contain_text("已消费 ¥60.00")
    expect(part.get_by_test_id("part-amount")).to_have_text("可退 ¥50.00")
    expect(part.get_by_test_id("part-bonus")).to_have_text("扣回赠送 ¥10.00")
    expect(phone.get_by_test_id("refundable")).to_have_text("¥50.00")
    expect(phone.get_by_test_id("bonus-removed")).to_have_text("¥10.00")
    expect(phone.get_by_test_id("balance-after")).to_have_text("¥0.00")
    shoot(phone, "refund-3a-asking")
    phone.get_by_label("退款原因").fill("搬家了，以后不来了")
    submit = phone.get_by_test_id("submit-refund")
    expect(submit).to_have_text("提交退款申请（¥50.00）")
    submit.click()
    expect(phone.get_by_test_id("message")).to_have_text("退款申请已提交，请等待审核")
    waiting = phone.get_by_test_id("refund-request")
    expect(waiting).to_have_count(1)
    expect(waiting).to_have_attribute("data-status", "pending")
    expect(waiting.locator(".weui-form-preview__hd")).to_contain_text("待审核")
    expect(waiting.locator(".weui-form-preview__hd")).to_contain_text("¥50.00")
    expect(waiting).to_contain_text("搬家了，以后不来了")
    expect(waiting.get_by_test_id("request-line")).to_have_text("可退 ¥50.00")
    expect(phone.get_by_test_id("submit-refund")).to_have_count(0)  # one request waiting at a time
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥60.00")  # nothing moves before a decision
    shoot(phone, "refund-3b-waiting")
    request = RefundRequest.objects.get()
    assert (request.status, request.amount, request.bonus) == ("pending", 5000, 1000)

    # 4. The operator: 退款申请 待审核 1 on the start page, the request, 同意退款, confirmed.
    desk.goto(live_server.url + "/admin/")
    desk.get_by_label("用户名").fill("shenhe")
    desk.get_by_label("密码").fill(PASSWORD)
    desk.get_by_role("button", name="登录").click()
    queue = desk.get_by_test_id("refund-requests-waiting")
    expect(queue.locator(".wx-stat__label")).to_have_text("待审核")
    expect(queue.locator(".wx-stat__value")).to_have_text("1")
    shoot(desk, "refund-4a-start-page")
    queue.click()
    expect(desk.locator("#result_list tbody tr")).to_have_count(1)
    desk.get_by_role("link", name=request.number).click()
    expect(desk.locator(".field-reason .readonly")).to_have_text("搬家了，以后不来了")
    expect(desk.locator(".field-amount_display .readonly")).to_have_text("¥50.00")
    expect(desk.locator(".field-bonus_display .readonly")).to_have_text("¥10.00")
    shoot(desk, "refund-4b-request")
    desk.get_by_test_id("approve").click()
    expect(desk).to_have_url(live_server.url + f"/admin/payments/refundrequest/{request.pk}/approve/")
    expect(desk.get_by_test_id("lines").get_by_test_id("refundable-now")).to_have_text("¥50.00")
    desk.get_by_label("处理说明").fill("已核实，同意退款")
    shoot(desk, "refund-4c-approve")
    desk.get_by_role("button", name="确认同意并退款").click()
    expect(desk).to_have_url(live_server.url + f"/admin/payments/refundrequest/{request.pk}/change/")
    expect(desk.locator(".messagelist .success")).to_have_text(f"已同意 {request.number}：1 笔退款，共 ¥50.00")
    expect(desk.get_by_test_id("approve")).to_have_count(0)
    shoot(desk, "refund-4d-approved")

    # 5. The sandbox settles the refund and its notify comes back (the delivery worker).
    assert wait_until(lambda: Refund.objects.filter(status=Refund.Status.SUCCESS).exists()), why_refund_not_settled()
    refund = Refund.objects.get()
    assert (refund.order, refund.amount) == (RechargeOrder.objects.get(), 5000)

    # 6. The member: 退款 ¥50.00 · 退款成功, the two rows on the statement, ¥0.00.
    phone.goto(live_server.url + "/wallet/refund/")
    expect(phone.get_by_test_id("balance")).to_have_text("¥0.00")
    expect(phone.get_by_test_id("nothing-refundable")).to_be_visible()
    done = phone.get_by_test_id("refund-request")
    expect(done).to_have_count(1)
    expect(done).to_have_attribute("data-status", "approved")
    expect(done.locator(".weui-form-preview__hd")).to_contain_text("已同意")
    expect(done.get_by_test_id("request-line")).to_have_text("退款 ¥50.00 · 退款成功")
    expect(done.get_by_test_id("request-note")).to_have_text("已核实，同意退款")
    shoot(phone, "refund-6a-refunded")
    phone.goto(live_server.url + "/wallet/statement/")
    expect(phone.get_by_test_id("balance")).to_have_text("¥0.00")
    entries = phone.get_by_test_id("entry")
    expect(entries).to_have_count(5)
    # Newest first: the refund's two rows, made in one transaction (the refund, then the bonus with it).
    expect(entries.get_by_test_id("entry-title")).to_have_text(
        ["赠送扣回", "充值退款", "消费 · 沙箱门店", re.compile(r"^赠送 · "), "充值"]
    )
    expect(entries.get_by_test_id("entry-amount")).to_have_text(["-¥10.00", "-¥50.00", "-¥60.00", "+¥20.00", "+¥100.00"])
    expect(entries.get_by_test_id("entry-balance")).to_have_text(
        ["余额 ¥0.00", "余额 ¥10.00", "余额 ¥60.00", "余额 ¥120.00", "余额 ¥100.00"]
    )
    expect(entries.nth(0)).to_have_attribute("data-kind", "bonus_removal")
    expect(entries.nth(1)).to_have_attribute("data-kind", "refund")
    expect(phone.get_by_test_id("header-balance")).to_have_text("¥0.00")
    shoot(phone, "refund-6b-statement")

    assert phone.errors == [] and desk.errors == []

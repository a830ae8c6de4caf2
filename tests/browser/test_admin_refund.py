"""An operator refunds ¥5 of a ¥10 order in the admin, in Chromium: the refund goes to the
sandbox over HTTP, settles there, its notify comes back through the sandbox's delivery, and
the user then sees ¥5.00 and 部分退款."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import User
from orders.models import RechargeOrder, Refund
from tests.admin import paid_at_sandbox
from tests.browser.conftest import shoot, wait_until, why_refund_not_settled
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desktop(browser, live_server, settings):
    """The admin as operators use it: a desktop browser window."""
    settings.SITE_URL = live_server.url
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def test_an_operator_refunds_half_an_order_and_the_user_sees_it(desktop, page, live_server, delivery_worker, settings):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 0.01  # the sandbox settles a refund 0.05 s after accepting it
    delivery_worker()
    payer = make_user("xiaoming", openid="oXiaoming000000000000000001")
    order = paid_at_sandbox(payer, "10.00")
    User.objects.create_superuser("yunying", password=PASSWORD)

    desktop.goto(live_server.url + "/admin/")
    desktop.get_by_label("用户名").fill("yunying")
    desktop.get_by_label("密码").fill(PASSWORD)
    desktop.get_by_role("button", name="登录").click()
    dashboard = desktop.get_by_test_id("dashboard")
    expect(dashboard.get_by_test_id("paid-today")).to_contain_text("¥10.00")
    expect(dashboard.get_by_test_id("paid-today")).to_contain_text("1 笔")
    shoot(desktop, "40-admin-start")

    desktop.get_by_role("link", name="充值订单").first.click()
    expect(desktop.locator("#result_list")).to_contain_text("¥10.00")
    shoot(desktop, "41-admin-orders")
    desktop.get_by_role("link", name=order.out_trade_no).click()
    expect(desktop.locator(".field-status_display .readonly")).to_have_text("已支付")
    expect(desktop.locator('input[name="_save"]')).to_have_count(0)
    shoot(desktop, "42-admin-order")

    desktop.locator(".object-tools").get_by_role("link", name="退款", exact=True).click()
    expect(desktop.get_by_test_id("refundable")).to_have_text("¥10.00")
    expect(desktop.get_by_label("退款金额（元）")).to_have_value("10.00")
    desktop.get_by_label("退款金额（元）").fill("5")
    desktop.get_by_label("退款原因").fill("用户多充值了 5 元")
    shoot(desktop, "43-admin-refund")
    desktop.get_by_role("button", name="确认退款").click()

    expect(desktop.locator(".messagelist .success")).to_contain_text("已提交退款 RF")
    expect(desktop.locator(".messagelist .success")).to_contain_text("¥5.00，状态：退款中")
    refund = Refund.objects.get()
    assert refund.amount == 500 and refund.order_id == order.pk

    # The delivery worker settles it at the sandbox and delivers the refund notify to us.
    assert wait_until(lambda: Refund.objects.get().status == Refund.Status.SUCCESS), why_refund_not_settled()
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.REFUNDED and order.refunded_amount == 500

    desktop.goto(live_server.url + "/admin/orders/refund/")
    row = desktop.locator("#result_list tbody tr").first
    expect(row).to_contain_text(refund.out_refund_no)
    expect(row).to_contain_text("退款成功")
    expect(row).to_contain_text("¥5.00")
    shoot(desktop, "44-admin-refunds")
    desktop.goto(live_server.url + f"/admin/orders/rechargeorder/{order.pk}/change/")
    expect(desktop.locator(".field-status_display .readonly")).to_have_text("部分退款（已退 ¥5.00）")
    shoot(desktop, "45-admin-order-refunded")
    desktop.get_by_role("link", name="xiaoming（余额 ¥5.00）").click()
    ledger = desktop.locator("#ledger")
    expect(ledger).to_contain_text("余额流水（最近 2 条，共 2 条）")
    expect(ledger.locator("tbody tr").first).to_contain_text("-5.00")
    shoot(desktop, "46-admin-user")

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("用户名").fill("xiaoming")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(live_server.url + "/recharge/")
    expect(page.get_by_test_id("balance")).to_have_text("¥5.00")
    page.goto(live_server.url + "/orders/")
    item = page.locator(f'[data-out-trade-no="{order.out_trade_no}"]')
    expect(item).to_contain_text("¥10.00")
    expect(item).to_contain_text("部分退款")
    shoot(page, "47-orders-partly-refunded")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_start_page_chart_reads_in_both_themes(browser, live_server, scheme):
    from datetime import timedelta

    from django.utils import timezone

    payer = make_user("chart", openid="oChart00000000000000000000001")
    for days_ago, amount in [(0, 3000), (1, 5000), (2, 1000), (6, 2500), (13, 800), (29, 4000)]:
        order = RechargeOrder.objects.create(
            user=payer,
            amount=amount,
            channel="jsapi",
            openid=payer.openid,
            expires_at=timezone.now(),
            out_trade_no=RechargeOrder.new_out_trade_no("jsapi"),
        )
        order.pay(f"42{order.out_trade_no}", amount, timezone.now() - timedelta(days=days_ago))
    User.objects.create_superuser("boss", password=PASSWORD)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN", color_scheme=scheme)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/admin/login/?next=/admin/")
        page.get_by_label("用户名").fill("boss")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        expect(page.get_by_test_id("paid-30d")).to_contain_text("¥163.00")
        expect(page.locator(".wx-chart__bar")).to_have_count(6)
        # The bars use the admin's own colours, so they show on either background.
        fill = page.locator(".wx-chart__bar").first.evaluate("el => getComputedStyle(el).fill")
        background = page.locator("body").evaluate("el => getComputedStyle(el).backgroundColor")
        assert fill not in ("none", background)
        shoot(page, f"48-admin-start-{scheme}")
    finally:
        context.close()

"""A day in the back office in Chromium: a finance operator with a second factor signs in, finds
an order by its last 6 digits, refunds part of it with a reason, exports the day's orders, and
the audit log and the order's timeline show each step."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from audit.models import AuditEntry
from tests.admin import paid_at_sandbox, payer_user
from tests.browser.conftest import open_page, shoot
from tests.factories import PASSWORD, make_user
from wxrecharge import roles

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def desktop(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    settings.OPERATOR_2FA_REQUIRED = True
    page = open_page(browser, viewport={"width": 1366, "height": 900}, accept_downloads=True)
    yield page
    page.context.close()


def test_finance_finds_refunds_exports_and_the_trail_shows_it(desktop, live_server):
    roles.sync_roles()
    order = paid_at_sandbox(payer_user(), "30.00")
    paid_at_sandbox(payer_user("other"), "12.00")
    finance = make_user("caiwu", is_staff=True)
    finance.groups.add(Group.objects.get(name=roles.FINANCE))
    device = TOTPDevice.objects.create(user=finance, name="手机", confirmed=True)

    page = desktop
    page.goto(live_server.url + "/admin/")
    page.get_by_label("用户名").fill("caiwu")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.get_by_label("验证码").fill(f"{totp(device.bin_key):06d}")
    page.get_by_role("button", name="验证").click()
    expect(page.get_by_test_id("dashboard")).to_be_visible()

    page.goto(live_server.url + "/admin/orders/rechargeorder/")
    page.locator("#searchbar").fill(order.out_trade_no[-6:])
    page.locator("#searchbar").press("Enter")
    expect(page.get_by_test_id("list-total")).to_contain_text("共 1 笔，合计 ¥30.00")
    shoot(page, "80-admin-search-last-digits")
    page.get_by_role("link", name=order.out_trade_no).click()

    page.get_by_role("link", name="退款", exact=True).click()
    page.get_by_label("退款金额").fill("10.00")
    page.get_by_label("退款原因").fill("顾客到店申请退一部分")
    page.get_by_role("button", name="确认退款").click()
    expect(page.locator(".messagelist")).to_contain_text("退款")

    page.goto(live_server.url + "/admin/orders/rechargeorder/?paid_at__from=" + timezone.localdate().isoformat())
    with page.expect_download() as download:
        page.get_by_role("link", name="导出 CSV").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "商户订单号" and len(rows) == 3 and order.out_trade_no in text

    page.goto(live_server.url + "/admin/audit/auditentry/")
    listing = page.locator("#result_list")
    for label in ("登录后台", "发起退款", "导出数据"):
        expect(listing).to_contain_text(label)
    expect(listing).to_contain_text("顾客到店申请退一部分")
    shoot(page, "81-admin-audit-log")
    mine = AuditEntry.objects.filter(actor_name="caiwu").order_by("pk").values_list("action", flat=True)
    assert [a for a in mine if a in ("signin", "order.refund", "export")] == ["signin", "order.refund", "export"]

    page.goto(live_server.url + f"/admin/orders/rechargeorder/{order.pk}/change/")
    story = page.get_by_test_id("timeline")
    expect(story).to_contain_text("下单")
    expect(story).to_contain_text("已支付")
    expect(story).to_contain_text("发起退款")
    expect(story).to_contain_text("caiwu")
    steps = story.locator("li b").all_inner_texts()
    assert steps.index("下单") < steps.index("已支付") < steps.index("发起退款")
    shoot(page, "82-admin-order-timeline")
    assert page.errors == []

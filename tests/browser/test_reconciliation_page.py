"""An operator reads a day's reconciliation in the admin, in Chromium: the list of days with
its chart and status, the day's page with one difference of each kind and their links, the
order behind one of them, and the differences exported as CSV.

The day is made through the sandbox over HTTP with its bill switches (devtools/wechat_sandbox/bills.py), one
of each kind, and reconciled at 11:00 the next day (the clock moved with time_machine); the
browser then reads it at that time too, so that the day is "yesterday" for the chart.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from devtools.wechat_sandbox import bills
from devtools.wechat_sandbox.models import Fault
from orders.models import RechargeOrder
from payments import services as payment_services
from reconciliation.models import BillDay, Difference
from reconciliation.services import reconcile_day
from tests.admin import paid_at_sandbox, pay_at_sandbox, placed_at_sandbox
from tests.browser.conftest import shoot
from tests.factories import PASSWORD, make_user
from tests.helpers import clear_of_midnight
from tests.payments.conftest import settle_sandbox_refunds
from wxproto.beijing import BEIJING

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
Kind = Difference.Kind
# What an operator who reads reconciliation needs, and nothing more.
PERMISSIONS = [
    ("reconciliation", "view_billday"),
    ("reconciliation", "view_difference"),
    ("reconciliation", "view_billrow"),
    ("orders", "view_rechargeorder"),
    ("orders", "view_refund"),
    ("payments", "view_incident"),
]


@pytest.fixture
def desktop(browser, live_server, settings):
    """The admin as operators use it: a desktop window of 1280×800."""
    settings.SITE_URL = live_server.url
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def day():
    """Today in Beijing, the day the trades happen on (clear of midnight)."""
    with clear_of_midnight() as today:
        yield today


def a_day_with_every_kind_of_difference(day) -> dict[str, RechargeOrder | str]:
    """Today's trades at the sandbox, one for each kind of difference (and one that agrees)."""
    payer = make_user("xiaohong", openid="oXiaohong00000000000000001")
    paid_at_sandbox(payer, "50.00")  # agrees
    lost = placed_at_sandbox(payer, "12.00")  # paid at WeChat, its notify lost: 支付未入账
    Fault.objects.create(out_trade_no=lost.out_trade_no, drop_notifies=10)
    pay_at_sandbox(lost)
    omitted = paid_at_sandbox(payer, "20.00")  # 微信无此支付
    Fault.objects.create(out_trade_no=omitted.out_trade_no, bill_omit=True)
    other_amount = paid_at_sandbox(payer, "30.00")  # 金额不符
    Fault.objects.create(out_trade_no=other_amount.out_trade_no, bill_total_fee=3100)
    twice = paid_at_sandbox(payer, "15.00")  # 账单重复行
    Fault.objects.create(out_trade_no=twice.out_trade_no, bill_duplicate_row=True)
    refunded = paid_at_sandbox(payer, "40.00")  # refunded at WeChat, still 退款中 here: 退款未结
    Fault.objects.create(out_trade_no=refunded.out_trade_no, drop_notifies=10)
    refund = payment_services.request_refund(refunded, 1000, "用户申请退款")
    assert settle_sandbox_refunds() == 1
    in_flight = paid_at_sandbox(payer, "25.00")  # refunded, not finished when WeChat cuts the bill: no difference
    payment_services.request_refund(in_flight, 500, "用户申请退款")
    Fault.objects.create(out_trade_no="", bill_add_unknown_trade=True)  # 未知订单
    return {
        "lost": lost,
        "omitted": omitted,
        "other_amount": other_amount,
        "twice": twice,
        "refunded": refunded,
        "refund": refund.out_refund_no,
        "unknown": bills.unknown_ids(settings.WECHAT_MCH_ID, day)[0],
    }


def operator() -> None:
    user = make_user("duizhang", is_staff=True)
    for app_label, codename in PERMISSIONS:
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def test_an_operator_reads_a_days_differences_and_exports_them(desktop, live_server, day):
    made = a_day_with_every_kind_of_difference(day)
    operator()
    with time_machine.travel(datetime.combine(day + timedelta(days=1), time(11, 0), tzinfo=BEIJING), tick=True):
        bill_day = reconcile_day(day)
        assert bill_day.status == BillDay.Status.DIFFERENCES
        kinds = dict(bill_day.differences.values_list("kind", "out_trade_no"))
        assert kinds == {
            Kind.MISSED_PAYMENT: made["lost"].out_trade_no,
            Kind.MISSING_PAYMENT: made["omitted"].out_trade_no,
            Kind.AMOUNT: made["other_amount"].out_trade_no,
            Kind.DUPLICATE: made["twice"].out_trade_no,
            Kind.UNSETTLED_REFUND: made["refunded"].out_trade_no,
            Kind.UNKNOWN_ORDER: made["unknown"],
        }

        desktop.goto(live_server.url + "/admin/")
        desktop.get_by_label("用户名").fill("duizhang")
        desktop.get_by_label("密码").fill(PASSWORD)
        desktop.get_by_role("button", name="登录").click()
        desktop.get_by_role("link", name="每日对账").first.click()

        # The list: the chart of the last 30 days (the day is yesterday now) and the day's status.
        chart = desktop.get_by_test_id("recon-chart")
        expect(chart).to_be_visible()
        expect(chart).to_contain_text("近 30 天每日支付金额：微信账单 / 本站")
        expect(chart.locator(".recon-chart__status_differences")).to_have_count(1)
        expect(chart.locator(".recon-chart__bar_wechat")).to_have_count(1)
        expect(chart.locator(".recon-chart__bar_ours")).to_have_count(1)
        expect(chart.locator("title").last).to_contain_text(f"{day.isoformat()} 有差异")
        row = desktop.locator("#result_list tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("有差异")
        expect(row.locator(".field-differences_display")).to_have_text("6 （异常 4）")
        expect(row.locator(".field-paid_count_pair")).to_have_text("8 / 7")
        # WeChat ¥50 + ¥12 + ¥31 + ¥15 ×2 + ¥40 + ¥25 + ¥8.88 (made up); ours ¥50 + ¥12 + ¥20 + ¥30 + ¥15 + ¥40 + ¥25.
        expect(row.locator(".field-paid_pair")).to_have_text("¥196.88 / ¥192.00")
        expect(row.locator(".field-refunded_pair")).to_have_text("¥15.00 / ¥15.00 （出账时未完成 1 笔 ¥5.00）")
        shoot(desktop, "80-reconciliation-list")

        # The day's page: the totals side by side and one difference of each kind.
        row.locator("th a, td a").first.click()
        expect(desktop.locator(".recon-facts")).to_contain_text("有差异")
        totals = desktop.get_by_test_id("totals")
        expect(totals).to_contain_text("不一致")
        in_flight = totals.locator("tr", has_text="其中出账时未完成")
        expect(in_flight).to_contain_text("1 笔 ¥5.00")
        expect(desktop.get_by_test_id("in-flight-note")).to_contain_text("出账后不再更新其状态")
        expect(totals.locator("tr", has_text="退款金额")).not_to_have_class("recon-differs")
        table = desktop.get_by_test_id("differences")
        expect(table).to_contain_text("差异 6 项（已自动补账 2，已提交异常 4，仅提示 0）")
        for label, key in (
            ("支付未入账", "lost"),
            ("微信无此支付", "omitted"),
            ("金额不符", "other_amount"),
            ("账单重复行", "twice"),
            ("退款未结", "refunded"),
        ):
            line = table.locator("tbody tr", has_text=label)
            expect(line).to_have_count(1)
            expect(line.get_by_role("link", name=made[key].out_trade_no)).to_have_attribute(
                "href", f"/admin/orders/rechargeorder/{made[key].pk}/change/"
            )
        refund_line = table.locator("tbody tr", has_text="退款未结")
        expect(refund_line.get_by_role("link", name=made["refund"])).to_be_visible()
        unknown = table.locator("tbody tr", has_text="未知订单")
        expect(unknown).to_contain_text(made["unknown"])
        expect(unknown.get_by_role("link", name=made["unknown"])).to_have_count(0)  # no order of ours to open
        for label in ("微信无此支付", "金额不符", "账单重复行", "未知订单"):
            expect(table.locator("tbody tr", has_text=label).get_by_role("link", name="#")).to_have_count(1)
        expect(table.locator("tbody tr", has_text="金额不符")).to_contain_text("¥31.00")
        shoot(desktop, "81-reconciliation-day")

        # The CSV: the same differences, in Chinese.
        with desktop.expect_download() as download_info:
            desktop.get_by_test_id("csv-link").click()
        download = download_info.value
        assert download.suggested_filename == f"reconciliation-{day.isoformat()}.csv"
        data = download.path().read_bytes()
        assert data.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0] == [
            "账单日",
            "差异类型",
            "处理结果",
            "商户订单号",
            "商户退款单号",
            "微信订单号",
            "微信金额（元）",
            "本站金额（元）",
            "异常编号",
            "说明",
        ]
        assert sorted((r[1], r[2], r[3]) for r in rows[1:]) == sorted(
            [
                ("支付未入账", "已自动补账", made["lost"].out_trade_no),
                ("退款未结", "已自动补账", made["refunded"].out_trade_no),
                ("微信无此支付", "已提交异常", made["omitted"].out_trade_no),
                ("金额不符", "已提交异常", made["other_amount"].out_trade_no),
                ("账单重复行", "已提交异常", made["twice"].out_trade_no),
                ("未知订单", "已提交异常", made["unknown"]),
            ]
        )
        amount_row = next(r for r in rows if r[1] == "金额不符")
        assert (amount_row[0], amount_row[6], amount_row[7]) == (day.isoformat(), "31.00", "30.00")
        assert "未做任何改动" in amount_row[9]

        # The order behind a difference opens on its own admin page.
        table.locator("tbody tr", has_text="金额不符").get_by_role("link", name=made["other_amount"].out_trade_no).click()
        expect(desktop).to_have_url(live_server.url + f"/admin/orders/rechargeorder/{made['other_amount'].pk}/change/")
        expect(desktop.locator("#content")).to_contain_text(made["other_amount"].out_trade_no)
        expect(desktop.locator(".field-status_display .readonly")).to_have_text("已支付")
        shoot(desktop, "82-reconciliation-order")

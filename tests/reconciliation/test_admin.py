"""The operators' reconciliation pages: the list of days with its chart, a day's page with its
totals and differences (linked to their orders, refunds and incidents), the CSV export, the
重新对账 button and its permission, and the start page's last day."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from payments.models import Incident
from reconciliation.models import BillDay, Difference
from reconciliation.services import reconcile_day
from tests.admin import operator
from tests.reconciliation.bills import BEIJING, bill, pay_row, refund_row
from tests.reconciliation.books import paid, pending, refund, transaction_id
from tests.reconciliation.conftest import DAY

pytestmark = pytest.mark.django_db
AT = datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING)
DAYS = "/admin/reconciliation/billday/"
UNKNOWN = "20261123120000109999999999"


def day_url(day: BillDay) -> str:
    return f"{DAYS}{day.pk}/change/"


@pytest.fixture(autouse=True)
def _now(clock):
    pass


@pytest.fixture
def day(wechat, payer):
    """A day with one of each outcome: a lost notify settled, an unknown order and a refund
    missing from the bill reported, and a balanced day before it."""
    wechat.bills[DAY - timedelta(days=1)] = bill()
    reconcile_day(DAY - timedelta(days=1))
    ok = paid(payer, 34500, AT)
    lost = pending(payer, 1000, AT)
    gone = refund(ok, 500, settled_at=AT + timedelta(hours=1))
    wechat.bills[DAY] = bill(
        pay_row(ok.out_trade_no, 34500, ok.transaction_id, AT),
        pay_row(lost.out_trade_no, 1000, transaction_id(), AT),
        pay_row(UNKNOWN, 700, transaction_id(), AT),
    )
    result = reconcile_day(DAY)
    result.lost, result.gone = lost, gone
    return result


def test_the_list_shows_each_day_with_its_status_totals_and_differences(admin_client, day):
    html = admin_client.get(DAYS).content.decode()
    assert 'recon-badge recon-badge_differences">有差异' in html and 'recon-badge recon-badge_balanced">已平' in html
    # WeChat's paid total against ours, marked where they differ.
    assert re.search(r'recon-pair recon-pair_differs">¥362\.00 <span class="recon-pair__sep">/</span> ¥355\.00', html)
    assert re.search(r'recon-pair recon-pair_differs">¥0\.00 <span class="recon-pair__sep">/</span> ¥5\.00', html)
    assert '3 <span class="recon-incidents">（异常 2）</span>' in html
    assert f'href="{day_url(day)}"' in html


def test_the_list_has_a_chart_of_the_last_30_days_linking_to_each_day(admin_client, day):
    html = admin_client.get(DAYS).content.decode()
    start = html.index('data-testid="recon-chart"')
    svg = html[start : html.index("</svg>", start)]
    assert html.index('data-testid="recon-chart"') < html.index('id="result_list"')
    assert svg.count("<title>") == 30 and "<script" not in svg
    assert "2026-11-23 有差异：微信 ¥362.00（3 笔），本站 ¥355.00（2 笔）" in svg
    assert "2026-11-22 已平：微信 ¥0.00（0 笔），本站 ¥0.00（0 笔）" in svg and "2026-10-25：尚未对账" in svg
    assert f'<a href="{day_url(day)}">' in svg
    assert svg.count("recon-chart__bar_wechat") == 1 and svg.count("recon-chart__bar_ours") == 1
    assert "recon-chart__status recon-chart__status_differences" in svg and "reconciliation/admin.css" in html


def test_the_days_page_shows_totals_side_by_side_and_the_differences_with_links(admin_client, day):
    html = admin_client.get(day_url(day)).content.decode()
    totals = html[html.index('data-testid="totals"') : html.index('data-testid="differences"')]
    assert re.search(
        r'<tr class="recon-differs"><th scope="row">支付金额</th><td class="num">¥362\.00</td>'
        r'<td class="num">¥355\.00</td><td><span class="recon-flag">不一致',
        totals,
    )
    assert re.search(r'<tr class=""><th scope="row">手续费</th><td class="num">¥2\.17</td><td class="num">-</td>', totals)
    differences = html[html.index('data-testid="differences"') :]
    assert "差异 3 项（已自动补账 1，已提交异常 2，仅提示 0）" in differences
    lost, gone = day.lost, day.gone
    assert f'<a href="/admin/orders/rechargeorder/{lost.pk}/change/">{lost.out_trade_no}</a>' in differences
    assert f'<a href="/admin/orders/refund/{gone.pk}/change/">{gone.out_refund_no}</a>' in differences
    unknown = Difference.objects.get(kind=Difference.Kind.UNKNOWN_ORDER)
    assert f'<a href="/admin/payments/incident/{unknown.incident_id}/change/">#{unknown.incident_id}</a>' in differences
    assert UNKNOWN in differences and "已自动补账" in differences and "微信无此退款" in differences
    assert f'href="/admin/reconciliation/billday/{day.pk}/differences.csv"' in html
    assert f'href="/admin/reconciliation/billrow/?bill_day__id__exact={day.pk}" data-testid="rows-link">账单明细（3 行）' in html
    assert 'data-testid="run-form"' in html  # a superuser may reconcile again


def test_a_days_page_says_why_it_is_not_reconciled(admin_client, wechat, payer):
    from payments.providers.base import WeChatError

    wechat.bills[DAY] = WeChatError("pay/downloadbill: ConnectionError", "NETWORK", retryable=True)
    failed = reconcile_day(DAY)
    html = admin_client.get(day_url(failed)).content.decode()
    assert "recon-badge_failed" in html and "NETWORK：pay/downloadbill: ConnectionError" in html
    assert "该日尚未完成对账：下载失败" in html


def test_the_bill_lines_are_listed_for_the_day(admin_client, day):
    html = admin_client.get(f"/admin/reconciliation/billrow/?bill_day__id__exact={day.pk}").content.decode()
    assert UNKNOWN in html and "¥345.00" in html and html.count('class="field-line_no"') == 3


def test_the_differences_export_as_csv_that_excel_reads(admin_client, day):
    response = admin_client.get(f"{DAYS}{day.pk}/differences.csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="reconciliation-2026-11-23.csv"'
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff账单日,差异类型,处理结果,商户订单号")
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert len(rows) == 4
    by_kind = {row[1]: row for row in rows[1:]}
    assert set(by_kind) == {"支付未入账", "未知订单", "微信无此退款"}
    assert by_kind["支付未入账"][2:5] == ["已自动补账", day.lost.out_trade_no, ""]
    assert by_kind["未知订单"][6:9] == ["7.00", "", str(Difference.objects.get(kind="unknown_order").incident_id)]
    assert by_kind["微信无此退款"][4] == day.gone.out_refund_no and by_kind["微信无此退款"][7] == "5.00"


def test_a_csv_cell_never_starts_a_formula(admin_client, wechat):
    wechat.bills[DAY] = bill(pay_row("=1+2", 700, transaction_id(), AT))
    reconciled = reconcile_day(DAY)
    rows = list(
        csv.reader(
            io.StringIO(admin_client.get(f"{DAYS}{reconciled.pk}/differences.csv").content.decode().removeprefix("\ufeff"))
        )
    )
    assert rows[1][3] == "'=1+2"


def test_viewing_needs_the_view_permission(day):
    _, nobody = operator("nobody")
    assert nobody.get(f"{DAYS}{day.pk}/differences.csv").status_code == 403
    assert nobody.get(day_url(day)).status_code == 403
    _, viewer = operator("viewer", "reconciliation.view_billday")
    assert viewer.get(f"{DAYS}{day.pk}/differences.csv").status_code == 200
    assert viewer.get(day_url(day)).status_code == 200


def test_reconciling_again_needs_its_own_permission(day, wechat):
    _, viewer = operator("viewer", "reconciliation.view_billday")
    assert 'data-testid="run-form"' not in viewer.get(day_url(day)).content.decode()
    calls = len(wechat.calls)
    assert viewer.post(f"{DAYS}{day.pk}/reconcile/").status_code == 403
    assert len(wechat.calls) == calls


def test_reconciling_again_is_a_post_that_changes_nothing_twice(day, wechat):
    _, runner = operator("runner", "reconciliation.view_billday", "reconciliation.run_billday")
    page = runner.get(day_url(day)).content.decode()
    assert 'data-testid="run-form"' in page and "csrfmiddlewaretoken" in page
    assert runner.get(f"{DAYS}{day.pk}/reconcile/").status_code == 405
    incidents = list(Incident.objects.values_list("pk", "occurrences"))
    response = runner.post(f"{DAYS}{day.pk}/reconcile/", follow=True)
    assert response.redirect_chain[-1][0] == day_url(day)
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        "已重新对账：2026-11-23: 有差异 — WeChat 3 笔 ¥362.00 退款 ¥0.00 手续费 ¥2.17; "
        "ours 2 笔 ¥355.00 退款 ¥5.00; differences 3 (settled 1, incidents 2)"
    ]
    assert list(Incident.objects.values_list("pk", "occurrences")) == incidents
    assert wechat.calls.count(DAY) == 2


def test_the_post_needs_the_csrf_token(day):
    from django.test import Client

    from tests.admin import operator as make_operator

    user, _ = make_operator("strict", "reconciliation.view_billday", "reconciliation.run_billday")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"{DAYS}{day.pk}/reconcile/").status_code == 403


def test_the_start_page_shows_the_last_days_status(admin_client, day):
    html = admin_client.get("/admin/").content.decode()
    block = html[html.index('data-testid="reconciliation"') : html.index('class="app-')]
    assert re.search(
        rf'href="{day_url(day)}" data-testid="last-bill-day">.*?最近对账日 2026-11-23.*?有差异.*?差异 3 项', block, re.S
    )
    assert re.search(r'data-testid="days-with-differences">.*?1 天', block, re.S)
    assert "yesterday-missing" not in block


def test_the_start_page_says_when_yesterday_is_not_reconciled(admin_client, clock, wechat):
    html = admin_client.get("/admin/").content.decode()
    assert "尚未对账" in html and 'data-testid="yesterday-missing"' in html


def test_the_start_page_block_is_for_those_who_may_see_reconciliation(day):
    _, orders_only = operator("orders", "orders.view_rechargeorder")
    assert 'data-testid="reconciliation"' not in orders_only.get("/admin/").content.decode()
    _, viewer = operator("viewer", "reconciliation.view_billday")
    assert 'data-testid="reconciliation"' in viewer.get("/admin/").content.decode()


def test_the_differences_list_and_page(admin_client, day):
    html = admin_client.get("/admin/reconciliation/difference/?kind__exact=unknown_order").content.decode()
    assert UNKNOWN in html and "未知订单" in html
    difference = Difference.objects.get(kind=Difference.Kind.MISSED_PAYMENT)
    page = admin_client.get(f"/admin/reconciliation/difference/{difference.pk}/change/").content.decode()
    assert f"/admin/orders/rechargeorder/{difference.order_id}/change/" in page


def test_the_models_are_read_only(admin_client, day):
    assert admin_client.get(f"{DAYS}add/").status_code == 403
    assert admin_client.post(f"{DAYS}{day.pk}/delete/").status_code == 403
    assert 'name="_save"' not in admin_client.get(day_url(day)).content.decode()


def test_a_refund_row_links_on_the_days_page(admin_client, wechat, payer):
    order = paid(payer, 1000, AT)
    item = refund(order, 300)
    wechat.bills[DAY] = bill(
        pay_row(order.out_trade_no, 1000, order.transaction_id, AT),
        refund_row(order.out_trade_no, order.transaction_id, item.out_refund_no, item.refund_id, 300, AT + timedelta(hours=1)),
    )
    reconciled = reconcile_day(DAY)
    html = admin_client.get(day_url(reconciled)).content.decode()
    assert f'<a href="/admin/orders/refund/{item.pk}/change/">{item.out_refund_no}</a>' in html and "退款未结" in html


def test_an_orders_page_links_to_the_reconciliation_that_named_it_for_those_who_may_see_it(day):
    order_url = f"/admin/orders/rechargeorder/{day.lost.pk}/change/"
    _, clerk = operator("clerk", "orders.view_rechargeorder")
    page = clerk.get(order_url).content.decode()
    assert "支付未入账（已自动补账）" not in page and day_url(day) not in page
    _, auditor = operator("auditor", "orders.view_rechargeorder", "reconciliation.view_billday")
    page = auditor.get(order_url).content.decode()
    assert f'href="{day_url(day)}"' in page and f"{DAY.isoformat()} 支付未入账（已自动补账）" in page
    # an order no difference names has no such line
    other = auditor.get(f"/admin/orders/rechargeorder/{day.gone.order.pk}/change/").content.decode()
    assert "支付未入账" not in other


def test_a_day_with_a_refund_in_flight_at_bill_time_says_why_the_refund_totals_include_it(admin_client, wechat, payer):
    """WeChat's bill lists a refund PROCESSING when it was not finished at the cut: balanced,
    nothing in red, and the page says why WeChat's refund total includes it."""
    order = paid(payer, 1000, AT)
    item = refund(order, 500, requested_at=AT + timedelta(hours=1))
    wechat.bills[DAY] = bill(
        pay_row(order.out_trade_no, 1000, order.transaction_id, AT, 手续费="0.06123"),
        refund_row(
            order.out_trade_no,
            order.transaction_id,
            item.out_refund_no,
            item.refund_id,
            500,
            AT + timedelta(hours=1),
            status="PROCESSING",
            手续费="-0.03000",
        ),
    )
    result = reconcile_day(DAY)
    assert result.status == BillDay.Status.BALANCED
    html = admin_client.get(day_url(result)).content.decode()
    totals = html[html.index('data-testid="totals"') : html.index('data-testid="differences"')]
    assert "recon-differs" not in totals and "不一致" not in totals
    assert re.search(r'<th scope="row">其中出账时未完成</th><td class="num">1 笔 ¥5\.00</td>', totals)
    assert "出账后不再更新其状态" in totals
    assert '<th scope="row">手续费</th><td class="num">¥0.03123</td>' in totals  # five decimals, exactly
    listing = admin_client.get(DAYS).content.decode()
    assert "（出账时未完成 1 笔 ¥5.00）" in listing and "recon-pair_differs" not in listing

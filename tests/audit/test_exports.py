"""Exports for finance, as finance opens them: the list's rows under its filters, as CSV that
Excel opens in Chinese (UTF-8 with a BOM) and as .xlsx; only with the export permission (by
link and by URL); each one in the audit log; nothing to export said; memory flat however many
rows."""

from __future__ import annotations

import csv
import io
import tracemalloc

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from audit.models import AuditEntry
from orders.models import RechargeOrder
from tests.admin import operator, settled_order
from tests.factories import make_order, make_user

pytestmark = pytest.mark.django_db
ORDERS = "/admin/orders/rechargeorder/"


@pytest.fixture
def finance():
    return operator("fin", "orders.view_rechargeorder", "orders.view_refund", "orders.view_ledgerentry", "audit.export_data")[1]


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def test_finance_exports_the_paid_orders_of_the_list_as_csv(finance):
    user = make_user("zhang")
    paid = [settled_order(user, 1000), settled_order(user, 2550)]
    make_order(user, 500)  # pending: not in the list filtered to paid
    page = finance.get(ORDERS, {"status__exact": "1"}).content.decode()
    assert "导出 CSV" in page and "export/csv/?status__exact=1" in page
    response = finance.get(ORDERS + "export/csv/", {"status__exact": "1"})
    assert response["Content-Type"].startswith("text/csv") and "attachment" in response["Content-Disposition"]
    header, *rows = read_csv(response)
    assert header[:4] == ["商户订单号", "用户", "金额（元）", "状态"]
    assert sorted((r[0], r[2], r[3]) for r in rows) == sorted((o.out_trade_no, o.amount_yuan, "已支付") for o in paid)
    (row,) = AuditEntry.objects.filter(action="export")
    assert row.actor_name == "fin" and row.changes == {"筛选": {"status__exact": "1"}, "行数": 2}


def test_the_same_as_an_excel_workbook(finance):
    order = settled_order(make_user("li"), 1234)
    response = finance.get(ORDERS + "export/xlsx/")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:3] == ("商户订单号", "用户", "金额（元）")
    assert rows[1][:3] == (order.out_trade_no, "li", "12.34")


def test_the_ledger_export_carries_each_spends_number_and_store(finance):
    from wallet.models import Charge

    user = make_user("spender")
    settled_order(user, 3000)
    charge = Charge.create(amount=1250, user_id=user.pk, store="一号店")
    header, *rows = read_csv(finance.get("/admin/orders/ledgerentry/export/csv/"))
    spend = next(r for r in rows if r[header.index("消费单号")])
    assert spend[header.index("消费单号")] == charge.number and spend[header.index("门店")] == "一号店"
    assert spend[header.index("金额（元）")] == "-12.50"


def test_without_the_export_permission_there_is_no_link_and_the_url_is_refused():
    settled_order(make_user("wang"), 1000)
    _, clerk = operator("clerk", "orders.view_rechargeorder")
    assert "导出 CSV" not in clerk.get(ORDERS).content.decode()
    assert clerk.get(ORDERS + "export/csv/").status_code == 403
    assert clerk.get(ORDERS + "export/xlsx/").status_code == 403
    assert not AuditEntry.objects.filter(action="export").exists()


def test_an_empty_range_says_there_is_nothing_to_export(finance):
    settled_order(make_user("zhao"), 1000)
    response = finance.get(ORDERS + "export/csv/", {"paid_at__from": "2020-01-01", "paid_at__to": "2020-01-02"}, follow=True)
    assert "没有符合条件的记录可导出" in response.content.decode()


def test_memory_stays_flat_however_many_rows(finance, monkeypatch):
    # Chunks of 200 rows rather than 2,000: the same shape (one chunk against ten) at a tenth
    # of the rows, each of which tracemalloc makes slow to read.
    monkeypatch.setattr("audit.export.CHUNK", 200)
    user = make_user("many")
    now = timezone.now()

    def peak_for(rows: int) -> int:
        RechargeOrder.objects.all().delete()
        RechargeOrder.objects.bulk_create(
            RechargeOrder(out_trade_no=f"E{n:025d}", user=user, amount=100, channel="jsapi", openid="o", expires_at=now)
            for n in range(rows)
        )
        tracemalloc.start()
        response = finance.get(ORDERS + "export/csv/")
        lines = sum(chunk.count(b"\n") for chunk in response.streaming_content)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert lines == rows + 1
        return peak

    peak_for(200)  # the first export also fills caches (templates, imports) once
    small, large = peak_for(200), peak_for(2_000)
    assert large < 2 * small + 500_000, (small, large)  # ten times the rows, not ten times the memory

"""Operators' pages for reconciliation: the days with their status and a chart of daily totals
(WeChat's against ours), each day's reconciliation page with its differences and their CSV
export, the differences of every day, and the bill lines as WeChat published them.

Everything is read-only: the books change only through reconciliation.services (which the
"重新对账" button calls, guarded by the custom permission `reconciliation.run_billday`).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from common.admin import ReadOnlyAdmin, change_url, changelist_url, link, start_page_panel
from common.money import fee_yuan, format_fen, yuan
from reconciliation import services
from reconciliation.models import BillDay, BillRow, Difference, beijing_today, bill_ready_at
from wxproto.beijing import BEIJING

CHART_DAYS = 30
# The chart is drawn in CSS pixels upwards (a fixed height, so its text stays at the page's size)
# and in per cent across (its width follows the page's): each day has a slot of SLOT per cent.
CHART_HEIGHT = 120
SLOT = 100 / CHART_DAYS
AMOUNT = re.compile(r"-?[0-9]+\.[0-9]{2}")


class ReconciliationMedia:
    """The pages' own styles (status badges, the chart, the day's tables), beside the admin's."""

    css = {"all": ["reconciliation/admin.css"]}


def can_run(request) -> bool:
    return request.user.has_perm("reconciliation.run_billday")


def status_badge(day: BillDay) -> str:
    return format_html('<span class="recon-badge recon-badge_{}">{}</span>', day.status, day.get_status_display())


def outcome_badge(d: Difference) -> str:
    return format_html('<span class="recon-badge recon-badge_{}">{}</span>', d.outcome, d.get_outcome_display())


def trade_and_refund(order, out_trade_no: str, refund, out_refund_no: str) -> str:
    """The order number, and under it the refund number when there is one (linked when ours)."""
    trade = link(order, out_trade_no) if order is not None else (out_trade_no or "-")
    if not out_refund_no:
        return trade
    refund_text = link(refund, out_refund_no) if refund is not None else out_refund_no
    return format_html('{}<span class="recon-sub">退款 {}</span>', trade, refund_text)


def pair(wechat: str, ours: str, differs: bool) -> str:
    """WeChat's figure and ours in one cell, marked when they differ."""
    return format_html(
        '<span class="recon-pair{}">{} <span class="recon-pair__sep">/</span> {}</span>',
        " recon-pair_differs" if differs else "",
        wechat,
        ours,
    )


# -- the chart -------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:.3f}%"


@dataclass
class ChartDay:
    day: date
    bill_day: BillDay | None
    n: int
    wechat_y: int = CHART_HEIGHT
    wechat_height: int = 0
    ours_y: int = CHART_HEIGHT
    ours_height: int = 0

    # Where the day's marks go across the chart, in per cent of its width: the slot, WeChat's
    # bar and ours side by side in its middle, the status strip under both, and the labels.
    @property
    def left(self) -> str:
        return _pct(self.n * SLOT)

    @property
    def slot(self) -> str:
        return _pct(SLOT)

    @property
    def wechat_x(self) -> str:
        return _pct((self.n + 0.14) * SLOT)

    @property
    def ours_x(self) -> str:
        return _pct((self.n + 0.52) * SLOT)

    @property
    def bar_width(self) -> str:
        return _pct(0.34 * SLOT)

    @property
    def strip_width(self) -> str:
        return _pct(0.72 * SLOT)

    @property
    def center(self) -> str:
        return _pct((self.n + 0.5) * SLOT)

    @property
    def right(self) -> str:
        return _pct((self.n + 0.86) * SLOT)

    @property
    def status(self) -> str:
        return self.bill_day.status if self.bill_day else "none"

    @property
    def url(self) -> str:
        return change_url(self.bill_day) if self.bill_day else ""

    @property
    def title(self) -> str:
        d = self.bill_day
        if d is None:
            return f"{self.day.isoformat()}：尚未对账"
        wechat = "无账单" if d.wechat_paid is None else f"¥{format_fen(d.wechat_paid)}（{d.wechat_paid_count} 笔）"
        return (
            f"{self.day.isoformat()} {d.get_status_display()}：微信 {wechat}，"
            f"本站 ¥{format_fen(d.our_paid)}（{d.our_paid_count} 笔）"
        )


def _height(fen: int | None, top: int) -> int:
    if not fen:
        return 0
    return max(round(fen * CHART_HEIGHT / top), 1)


def chart(now: datetime | None = None) -> dict:
    """The last 30 days whose bill can exist (up to yesterday): WeChat's paid total beside ours."""
    yesterday = beijing_today(now) - timedelta(days=1)
    days = [yesterday - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    found = {d.date: d for d in BillDay.objects.filter(date__gte=days[0], date__lte=days[-1])}
    peak = max([max(d.wechat_paid or 0, d.our_paid) for d in found.values()], default=0)
    top = peak or 1
    bars = []
    for n, day in enumerate(days):
        d = found.get(day)
        bar = ChartDay(day, d, n=n)
        if d is not None:
            bar.wechat_height, bar.ours_height = _height(d.wechat_paid, top), _height(d.our_paid, top)
            bar.wechat_y, bar.ours_y = CHART_HEIGHT - bar.wechat_height, CHART_HEIGHT - bar.ours_height
        bars.append(bar)
    return {
        "bars": bars,
        "height": CHART_HEIGHT,
        "first_day": days[0],
        "last_day": days[-1],
        "top": format_fen(peak) if peak else "",
    }


# -- the start page ----------------------------------------------------------------------------------


@start_page_panel
def _last_day(request) -> dict:
    """The last reconciled day, for those who may see reconciliation."""
    return {"reconciliation": start_page_status()} if request.user.has_perm("reconciliation.view_billday") else {}


def start_page_status(now: datetime | None = None) -> dict:
    """For the admin's start page: the last day reconciled, and whether yesterday is missing."""
    yesterday = beijing_today(now) - timedelta(days=1)
    last = BillDay.objects.order_by("-date").first()
    since = yesterday - timedelta(days=CHART_DAYS - 1)
    recent = BillDay.objects.filter(date__gte=since, date__lte=yesterday)
    return {
        "day": last,
        "url": change_url(last) if last else "",
        "differences": last.differences.count() if last else 0,
        "yesterday": yesterday,
        "yesterday_done": bool(last and last.date >= yesterday),
        # Before 10:00 yesterday's bill is not ready: nothing to miss yet.
        "yesterday_due": (now or timezone.now()) >= bill_ready_at(yesterday),
        "days_with_differences": recent.filter(status=BillDay.Status.DIFFERENCES).count(),
        "differences_url": changelist_url(BillDay, status__exact=BillDay.Status.DIFFERENCES),
        "list_url": changelist_url(BillDay),
    }


# -- the days -----------------------------------------------------------------------------------------


@admin.register(BillDay)
class BillDayAdmin(ReadOnlyAdmin):
    list_display = (
        "date_display",
        "status_display",
        "paid_count_pair",
        "paid_pair",
        "refunded_pair",
        "fee_display",
        "differences_display",
    )
    list_filter = ("status",)
    date_hierarchy = "date"
    change_list_template = "admin/reconciliation/billday/change_list.html"
    Media = ReconciliationMedia
    change_form_template = "admin/reconciliation/billday/change_form.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                difference_count=Count("differences"),
                incident_count=Count("differences", filter=Q(differences__incident__isnull=False)),
            )
        )

    @admin.display(description="账单日", ordering="date")
    def date_display(self, obj: BillDay) -> str:
        return obj.date.isoformat()

    @admin.display(description="状态", ordering="status")
    def status_display(self, obj: BillDay) -> str:
        return status_badge(obj)

    @admin.display(description="支付笔数（微信/本站）")
    def paid_count_pair(self, obj: BillDay) -> str:
        wechat = "-" if obj.wechat_paid_count is None else obj.wechat_paid_count
        return pair(wechat, obj.our_paid_count, obj.wechat_paid_count is not None and obj.wechat_paid_count != obj.our_paid_count)

    @admin.display(description="支付金额（微信/本站）")
    def paid_pair(self, obj: BillDay) -> str:
        return pair(yuan(obj.wechat_paid), yuan(obj.our_paid), obj.wechat_paid is not None and obj.wechat_paid != obj.our_paid)

    @admin.display(description="退款金额（微信/本站）")
    def refunded_pair(self, obj: BillDay) -> str:
        shown = pair(
            yuan(obj.wechat_refunded),
            yuan(obj.our_refunded),
            obj.wechat_refunded is not None and obj.wechat_refunded != obj.our_refunded,
        )
        if obj.wechat_in_flight_count:
            return format_html('{} <span class="recon-why">（出账时未完成 {}）</span>', shown, obj.in_flight_text())
        return shown

    @admin.display(description="手续费（微信）")
    def fee_display(self, obj: BillDay) -> str:
        return fee_yuan(obj.wechat_fee_millifen)

    @admin.display(description="差异", ordering="difference_count")
    def differences_display(self, obj: BillDay) -> str:
        if not obj.difference_count:
            return "-"
        if obj.incident_count:
            return format_html('{} <span class="recon-incidents">（异常 {}）</span>', obj.difference_count, obj.incident_count)
        return str(obj.difference_count)

    # -- pages ----------------------------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        context = {"title": "每日对账", **(extra_context or {}), "chart": chart()}
        return super().changelist_view(request, context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        day = self.get_object(request, object_id)
        if day is not None:
            context.update(self.day_context(request, day), title=f"{day.date.isoformat()} 对账", subtitle=None)
        return super().change_view(request, object_id, form_url, context)

    def day_context(self, request, day: BillDay) -> dict:
        differences = list(
            day.differences.select_related("order", "refund", "incident").order_by(
                "outcome", "kind", "out_trade_no", "out_refund_no"
            )
        )
        counts = services.outcome_counts(day)
        return {
            "day": day,
            "status_badge": status_badge(day),
            "totals": day.totals(),
            "differences": [self.difference_row(d) for d in differences],
            "counts": counts,
            "csv_url": reverse("admin:reconciliation_billday_csv", args=[day.pk]),
            "rows_url": changelist_url(BillRow, bill_day__id__exact=day.pk),
            "row_count": day.rows.count(),
            "run_url": reverse("admin:reconciliation_billday_run", args=[day.pk]) if can_run(request) else "",
            "claimed": bool(day.claimed_until and day.claimed_until > timezone.now()),
        }

    @staticmethod
    def difference_row(d: Difference) -> dict:
        return {
            "difference": d,
            "trade": trade_and_refund(
                d.order if d.order_id else None, d.out_trade_no, d.refund if d.refund_id else None, d.out_refund_no
            ),
            "incident": (
                link(d.incident, f"#{d.incident_id}{'' if d.incident.is_open else '（已处理）'}") if d.incident_id else "-"
            ),
            "wechat_amount": yuan(d.wechat_amount),
            "our_amount": yuan(d.our_amount),
        }

    def get_urls(self):
        own = [
            path("<int:pk>/differences.csv", self.admin_site.admin_view(self.csv_view), name="reconciliation_billday_csv"),
            path("<int:pk>/reconcile/", self.admin_site.admin_view(self.run_view), name="reconciliation_billday_run"),
        ]
        return [*own, *super().get_urls()]  # before the catch-all "<object_id>/"

    def csv_view(self, request, pk: int):
        """The day's differences as CSV (UTF-8 with a BOM, so that Excel reads the Chinese)."""
        day = get_object_or_404(BillDay, pk=pk)
        if not self.has_view_permission(request, day):
            raise PermissionDenied
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="reconciliation-{day.date.isoformat()}.csv"'
        response.write("\ufeff")
        writer = csv.writer(response)
        writer.writerow(
            [
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
        )
        for d in day.differences.order_by("outcome", "kind", "out_trade_no", "out_refund_no"):
            writer.writerow(
                [
                    _cell(v)
                    for v in (
                        day.date.isoformat(),
                        d.get_kind_display(),
                        d.get_outcome_display(),
                        d.out_trade_no,
                        d.out_refund_no,
                        d.transaction_id,
                        "" if d.wechat_amount is None else format_fen(d.wechat_amount),
                        "" if d.our_amount is None else format_fen(d.our_amount),
                        d.incident_id or "",
                        d.detail,
                    )
                ]
            )
        return response

    @method_decorator(require_POST)
    def run_view(self, request, pk: int):
        """重新对账: the same service as the command; the day's page says how it went."""
        day = get_object_or_404(BillDay, pk=pk)
        if not (self.has_view_permission(request, day) and can_run(request)):
            raise PermissionDenied
        try:
            day = services.reconcile_day(day.date)
        except (services.DateRefused, services.DayBusy) as exc:
            self.message_user(request, f"未重新对账：{exc}", messages.WARNING)
            return redirect("admin:reconciliation_billday_change", pk)
        level = messages.SUCCESS if day.is_complete and not day.last_error else messages.WARNING
        self.message_user(request, f"已重新对账：{services.summary(day)}", level)
        return redirect("admin:reconciliation_billday_change", pk)


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: never a formula (a bill's ids come from outside)."""
    text = str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not AMOUNT.fullmatch(text)):
        return "'" + text
    return text


# -- differences and bill lines -----------------------------------------------------------------------


@admin.register(Difference)
class DifferenceAdmin(ReadOnlyAdmin):
    # Narrow enough for 1280 px beside the filters: the refund number under the order number,
    # both amounts in one cell, the explanation last and wrapping.
    list_display = (
        "bill_day_link",
        "kind",
        "outcome_display",
        "trade_display",
        "amounts_display",
        "incident_link",
        "short_detail",
    )
    list_filter = ("outcome", "kind", "bill_day__status")
    exact_search_fields = ("out_trade_no", "out_refund_no", "transaction_id")
    list_select_related = ("bill_day", "order", "refund", "incident")
    Media = ReconciliationMedia
    fields = (
        "bill_day_link",
        "kind",
        "outcome",
        "order_link",
        "refund_link",
        "transaction_id",
        "wechat_amount_display",
        "our_amount_display",
        "incident_link",
        "detail",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="账单日", ordering="bill_day__date")
    def bill_day_link(self, obj: Difference) -> str:
        return link(obj.bill_day)

    @admin.display(description="处理结果", ordering="outcome")
    def outcome_display(self, obj: Difference) -> str:
        return outcome_badge(obj)

    @admin.display(description="商户订单号 / 退款单号", ordering="out_trade_no")
    def trade_display(self, obj: Difference) -> str:
        return trade_and_refund(
            obj.order if obj.order_id else None, obj.out_trade_no, obj.refund if obj.refund_id else None, obj.out_refund_no
        )

    @admin.display(description="金额（微信/本站）")
    def amounts_display(self, obj: Difference) -> str:
        return pair(
            yuan(obj.wechat_amount),
            yuan(obj.our_amount),
            obj.wechat_amount is not None and obj.our_amount is not None and obj.wechat_amount != obj.our_amount,
        )

    @admin.display(description="商户订单号")
    def order_link(self, obj: Difference) -> str:
        return link(obj.order, obj.out_trade_no) if obj.order_id else (obj.out_trade_no or "-")

    @admin.display(description="商户退款单号")
    def refund_link(self, obj: Difference) -> str:
        return link(obj.refund, obj.out_refund_no) if obj.refund_id else (obj.out_refund_no or "-")

    @admin.display(description="微信金额")
    def wechat_amount_display(self, obj: Difference) -> str:
        return yuan(obj.wechat_amount)

    @admin.display(description="本站金额")
    def our_amount_display(self, obj: Difference) -> str:
        return yuan(obj.our_amount)

    @admin.display(description="异常")
    def incident_link(self, obj: Difference) -> str:
        return link(obj.incident, f"#{obj.incident_id}") if obj.incident_id else "-"

    @admin.display(description="说明")
    def short_detail(self, obj: Difference) -> str:
        return Truncator(obj.detail).chars(36)


@admin.register(BillRow)
class BillRowAdmin(ReadOnlyAdmin):
    # Narrow enough for 1280 px beside the filters: the time of day (the day is the first
    # column), one amount and one state for the line's kind, the refund number under the order
    # number, and 重复 only where a line is one. WeChat's transaction id is on the line's page.
    list_display = (
        "bill_day",
        "line_no",
        "kind",
        "time_display",
        "trade_display",
        "line_amount_display",
        "fee_display",
        "state_display",
        "duplicate_display",
    )
    list_filter = ("kind", "duplicate")
    exact_search_fields = ("out_trade_no", "transaction_id", "out_refund_no", "refund_id")
    list_select_related = ("bill_day",)
    list_per_page = 100
    Media = ReconciliationMedia
    fields = (
        "bill_day",
        "line_no",
        "kind",
        "happened_at",
        "appid",
        "mch_id",
        "transaction_id",
        "out_trade_no",
        "trade_state",
        "amount_display",
        "refund_id",
        "out_refund_no",
        "refund_amount_display",
        "refund_status",
        "fee_display",
        "duplicate",
        "raw_display",
    )
    readonly_fields = fields

    @admin.display(description="交易时间", ordering="happened_at")
    def time_display(self, obj: BillRow) -> str:
        return timezone.localtime(obj.happened_at, BEIJING).strftime("%H:%M:%S")

    @admin.display(description="商户订单号 / 退款单号", ordering="out_trade_no")
    def trade_display(self, obj: BillRow) -> str:
        return trade_and_refund(None, obj.out_trade_no, None, obj.out_refund_no)

    @admin.display(description="金额")
    def line_amount_display(self, obj: BillRow) -> str:
        """A payment's 应结订单金额, a refund's 退款金额."""
        return yuan(obj.refund_amount if obj.kind == BillRow.Kind.REFUND else obj.amount)

    @admin.display(description="状态")
    def state_display(self, obj: BillRow) -> str:
        return obj.refund_status if obj.kind == BillRow.Kind.REFUND else obj.trade_state

    @admin.display(description="重复行", ordering="duplicate", empty_value="")
    def duplicate_display(self, obj: BillRow) -> str:
        return format_html('<span class="recon-flag">重复</span>') if obj.duplicate else ""

    @admin.display(description="应结订单金额", ordering="amount")
    def amount_display(self, obj: BillRow) -> str:
        return yuan(obj.amount)

    @admin.display(description="退款金额", ordering="refund_amount")
    def refund_amount_display(self, obj: BillRow) -> str:
        return yuan(obj.refund_amount)

    @admin.display(description="手续费")
    def fee_display(self, obj: BillRow) -> str:
        return fee_yuan(obj.fee_millifen)

    @admin.display(description="原文")
    def raw_display(self, obj: BillRow) -> str:
        return format_html('<pre class="notify-body">{}</pre>', obj.raw)

"""Operators' pages for reconciliation: the days with their status and a chart of daily totals
(WeChat's against ours), each day's reconciliation page with its differences and their CSV
export, the differences of every day, the bill lines as WeChat published them, and 预收资金
(what the business owes its users, day by day: reconciliation.liability), with its chart and
CSV, behind the custom permission `reconciliation.view_liability`.

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
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from audit import log as audit
from audit.export import ExportMixin
from common.admin import ReadOnlyAdmin, change_url, changelist_url, link, start_page_panel
from common.admin_filters import DateRangeFilter
from common.money import fee_yuan, format_fen, yuan
from reconciliation import liability, services
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
    """The last reconciled day, for those who may see reconciliation, and what is owed to the
    users now, for those who may see 预收资金."""
    shown: dict = {}
    if request.user.has_perm("reconciliation.view_billday"):
        shown.update(start_page_status())
    if can_view_liability(request):
        shown["liability"] = owed_now_tile()
    return {"reconciliation": shown} if shown else {}


def owed_now_tile() -> dict:
    """For the admin's start page: what is owed to the users now, paid and bonus, and the page."""
    owed = liability.owed_now()
    return {
        "total": yuan(owed.total),
        "paid": yuan(owed.paid),
        "bonus": yuan(owed.bonus),
        "url": reverse("admin:reconciliation_liability"),
    }


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
        if can_view_liability(request):
            context["liability_url"] = reverse("admin:reconciliation_liability")
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
        view = self.admin_site.admin_view
        own = [
            path("<int:pk>/differences.csv", view(self.csv_view), name="reconciliation_billday_csv"),
            path("<int:pk>/reconcile/", view(self.run_view), name="reconciliation_billday_run"),
            # 预收资金 is no model of its own: its pages sit beside the days they are read with.
            path("liability/", view(self.liability_view), name="reconciliation_liability"),
            path("liability.csv", view(self.liability_csv_view), name="reconciliation_liability_csv"),
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
            audit.record("bill.rerun", request=request, obj=day, changes={"结果": f"未重新对账：{exc}"})
            return redirect("admin:reconciliation_billday_change", pk)
        audit.record("bill.rerun", request=request, obj=day, changes={"结果": services.summary(day)})
        level = messages.SUCCESS if day.is_complete and not day.last_error else messages.WARNING
        self.message_user(request, f"已重新对账：{services.summary(day)}", level)
        return redirect("admin:reconciliation_billday_change", pk)

    # -- 预收资金 (reconciliation.liability; the helpers are below) ----------------------------------
    def liability_page(self, request, today: date, day: date | None, error: str = "", typed: str = "") -> TemplateResponse:
        """The page, for `day` (None: only the date form, with `error`)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "预收资金",
            "today": today,
            "error": error,
            "typed": typed if error else (day.isoformat() if day else ""),
            "csv_url": reverse("admin:reconciliation_liability_csv"),
            "lines": liability.LINES,
        }
        if day is not None:
            reports = liability.series(day, LIABILITY_DAYS)
            report = reports[-1]
            context.update(
                day=day,
                is_today=day == today,
                report=report,
                rows=report_rows(report),
                chart=owed_chart(reports),
                csv_start=reports[0].day,
                csv_end=day,
            )
        return TemplateResponse(request, "admin/reconciliation/liability.html", context, status=400 if error else 200)

    def liability_view(self, request):
        """预收资金 of a Beijing day (?date=YYYY-MM-DD, today by default), with the 90 days up to it."""
        if not can_view_liability(request):
            raise PermissionDenied
        today = beijing_today()
        typed = request.GET.get("date", "")
        try:
            day = parse_day(typed, today, today)
        except BadDate as exc:
            return self.liability_page(request, today, None, str(exc), typed)
        return self.liability_page(request, today, day)

    def liability_csv_view(self, request):
        """One row per Beijing day from ?start= to ?end= (default: the 90 days up to today), in yuan,
        written as the differences' CSV is (UTF-8 with a BOM, so that Excel reads the Chinese)."""
        if not can_view_liability(request):
            raise PermissionDenied
        today = beijing_today()
        try:
            end = parse_day(request.GET.get("end"), today, today, "截止日期")
            start = parse_day(request.GET.get("start"), end - timedelta(days=LIABILITY_DAYS - 1), today, "起始日期")
            if start > end:
                raise BadDate(f"起始日期 {start.isoformat()} 晚于截止日期 {end.isoformat()}")
            if (end - start).days + 1 > LIABILITY_CSV_MAX_DAYS:
                raise BadDate(f"一次最多导出 {LIABILITY_CSV_MAX_DAYS} 天，请缩小日期范围")
        except BadDate as exc:
            return self.liability_page(request, today, None, str(exc))
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="liability-{start.isoformat()}-{end.isoformat()}.csv"'
        response.write("\ufeff")
        writer = csv.writer(response)
        writer.writerow(LIABILITY_CSV_HEADER)
        for report in liability.series(end, (end - start).days + 1):
            amounts = [report.opening.paid, report.opening.bonus]
            amounts += [fen for _, split in report.rows() for fen in (split.paid, split.bonus)]
            amounts += [report.closing.paid, report.closing.bonus]
            writer.writerow([report.day.isoformat(), *(format_fen(fen) for fen in amounts)])
        return response


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: never a formula (a bill's ids come from outside)."""
    text = str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not AMOUNT.fullmatch(text)):
        return "'" + text
    return text


# -- 预收资金: what is owed to the users ------------------------------------------------------------------

# The page's chart and the CSV's default range: the 90 days up to the chosen day.
LIABILITY_DAYS = 90
# The CSV's longest range (about ten years), and the earliest day either answers for.
LIABILITY_CSV_MAX_DAYS = 3660
EARLIEST_DAY = date(2000, 1, 1)
OWED_CHART_HEIGHT = 160
OWED_SLOT = 100 / LIABILITY_DAYS
# The two parts of the bars, as SVG fill attributes (the policy allows no style attribute, and
# the legend's swatches are small SVGs too): paid money in the admin's blue, bonus in amber.
PAID_FILL = "#417690"
BONUS_FILL = "#e0a100"
ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def can_view_liability(request) -> bool:
    return request.user.has_perm("reconciliation.view_liability")


class BadDate(ValueError):
    """A date typed into the page or the CSV's link that cannot be used; its text is for operators."""


def parse_day(text: str | None, default: date, today: date, what: str = "日期") -> date:
    """A Beijing day as YYYY-MM-DD (blank: `default`), up to today; BadDate says why not."""
    text = (text or "").strip()
    if not text:
        return default
    shown = Truncator(text).chars(20)
    if not ISO_DAY.fullmatch(text):
        raise BadDate(f"{what}“{shown}”格式不对：请按 年-月-日 填写，例如 {today.isoformat()}")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadDate(f"{what} {text} 不存在，请检查月份和日期") from None
    if day > today:
        raise BadDate(f"{what} {text} 在未来（北京时间今天是 {today.isoformat()}）")
    if day < EARLIEST_DAY:
        raise BadDate(f"{what} {text} 太早：最早可查 {EARLIEST_DAY.isoformat()}")
    return day


def signed_yuan(fen: int) -> str:
    """A movement for people: +¥10.00, -¥5.00, ¥0.00."""
    return f"+{yuan(fen)}" if fen > 0 else yuan(fen)


@dataclass
class OwedBar:
    """One day of the chart of what is owed at the day's end: the paid part at the bottom, the
    bonus part on top of it. Across in per cent of the width, upwards in CSS pixels."""

    report: liability.DayReport
    n: int
    paid_height: int
    bonus_height: int

    @property
    def day(self) -> date:
        return self.report.day

    @property
    def left(self) -> str:
        return _pct(self.n * OWED_SLOT)

    @property
    def slot(self) -> str:
        return _pct(OWED_SLOT)

    @property
    def x(self) -> str:
        return _pct((self.n + 0.12) * OWED_SLOT)

    @property
    def width(self) -> str:
        return _pct(0.76 * OWED_SLOT)

    @property
    def center(self) -> str:
        return _pct((self.n + 0.5) * OWED_SLOT)

    @property
    def right(self) -> str:
        return _pct((self.n + 1) * OWED_SLOT)

    @property
    def paid_y(self) -> int:
        return OWED_CHART_HEIGHT - self.paid_height

    @property
    def bonus_y(self) -> int:
        return self.paid_y - self.bonus_height

    @property
    def title(self) -> str:
        c = self.report.closing
        return f"{self.day.isoformat()} 期末：本金 {yuan(c.paid)}，赠送 {yuan(c.bonus)}，合计 {yuan(c.total)}"


def _stacked(owed: liability.Split, top: int) -> tuple[int, int]:
    """The heights in pixels of a bar's paid and bonus parts: the whole bar to scale, and no
    part that is there drawn as nothing (at least a pixel), within the chart's height."""

    def scaled(fen: int) -> int:
        return max(round(fen * OWED_CHART_HEIGHT / top), 1) if fen > 0 else 0

    paid = scaled(owed.paid)
    whole = max(scaled(owed.total), paid + (1 if owed.bonus > 0 else 0))
    if whole > OWED_CHART_HEIGHT:
        paid, whole = paid - 1, OWED_CHART_HEIGHT
    return paid, whole - paid


def owed_chart(reports: list[liability.DayReport]) -> dict:
    """What was owed at the end of each day (the last 90 up to the chosen one), drawn on the server."""
    peak = max(r.closing.total for r in reports)
    top = peak or 1
    bars = [OwedBar(r, n, *_stacked(r.closing, top)) for n, r in enumerate(reports)]
    return {
        "bars": bars,
        "height": OWED_CHART_HEIGHT,
        "first_day": reports[0].day,
        "last_day": reports[-1].day,
        "top": yuan(peak) if peak else "",
        "paid_fill": PAID_FILL,
        "bonus_fill": BONUS_FILL,
    }


def report_rows(report: liability.DayReport) -> list[dict]:
    """The day's table: opening, each line (signed), closing; paid, bonus and their total."""

    def row(key: str, label: str, split: liability.Split, show=yuan) -> dict:
        return {"key": key, "label": label, "paid": show(split.paid), "bonus": show(split.bonus), "total": show(split.total)}

    return [
        row("opening", "期初（当日 00:00 应付）", report.opening),
        *(row(line.key, line.label, split, signed_yuan) for line, split in report.rows()),
        row("movement", "当日变动合计", report.movement, signed_yuan),
        row("closing", "期末（次日 00:00 应付）", report.closing),
    ]


LIABILITY_CSV_HEADER = [
    "日期",
    "期初本金（元）",
    "期初赠送（元）",
    *(f"{line.label}·{part}（元）" for line in liability.LINES for part in ("本金", "赠送")),
    "期末本金（元）",
    "期末赠送（元）",
]


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


# WeChat's codes in a bill's 交易状态 and 退款状态 columns (v2 and v3), for people.
TRADE_STATES = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "未支付",
    "CLOSED": "已关闭",
    "REVOKED": "已撤销",
    "USERPAYING": "用户支付中",
    "PAYERROR": "支付失败",
}
REFUND_STATES = {
    "SUCCESS": "退款成功",
    "PROCESSING": "退款处理中",
    "REFUNDCLOSE": "退款关闭",
    "CLOSED": "退款关闭",
    "FAIL": "退款失败",
    "FAILED": "退款失败",
    "CHANGE": "退款异常",
    "ABNORMAL": "退款异常",
}


def bill_state(code: str, names: dict[str, str], with_code: bool = False) -> str:
    """A bill's state in Chinese (with WeChat's code, as in the bill file); an unknown code as is."""
    name = names.get(code)
    if name is None:
        return code or "-"
    return f"{name}（{code}）" if with_code else name


@admin.register(BillRow)
class BillRowAdmin(ExportMixin, ReadOnlyAdmin):
    # Narrow enough for 1280 px beside the filters: the time of day (the day is the first
    # column), one amount and one state for the line's kind, the refund number under the order
    # number, and 重复 only where a line is one. WeChat's transaction id is on the line's page.
    list_display = (
        "bill_day",
        "line_no",
        "kind",
        "trade_type",
        "time_display",
        "trade_display",
        "line_amount_display",
        "fee_display",
        "state_display",
        "duplicate_display",
    )
    list_filter = ("kind", "duplicate", ("happened_at", DateRangeFilter))
    exact_search_fields = ("out_trade_no", "transaction_id", "out_refund_no", "refund_id")
    change_list_template = "admin/export_change_list.html"
    export_name = "bill-rows"
    export_columns = [
        ("账单日", lambda r: r.bill_day.date.isoformat()),
        ("行号", lambda r: r.line_no),
        ("类型", lambda r: r.get_kind_display()),
        ("交易时间", lambda r: r.happened_at),
        ("商户号", lambda r: r.mch_id),
        ("微信订单号", lambda r: r.transaction_id),
        ("商户订单号", lambda r: r.out_trade_no),
        ("交易类型", lambda r: r.trade_type),
        ("交易状态", lambda r: r.trade_state),
        ("应结订单金额（元）", lambda r: format_fen(r.amount)),
        ("微信退款单号", lambda r: r.refund_id),
        ("商户退款单号", lambda r: r.out_refund_no),
        ("退款金额（元）", lambda r: format_fen(r.refund_amount)),
        ("退款状态", lambda r: r.refund_status),
        ("手续费（元）", lambda r: fee_yuan(r.fee_millifen)),
    ]
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
        "trade_state_display",
        "trade_type",
        "amount_display",
        "refund_id",
        "out_refund_no",
        "refund_amount_display",
        "refund_status_display",
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
        if obj.kind == BillRow.Kind.REFUND:
            return bill_state(obj.refund_status, REFUND_STATES)
        return bill_state(obj.trade_state, TRADE_STATES)

    @admin.display(description="交易状态")
    def trade_state_display(self, obj: BillRow) -> str:
        return bill_state(obj.trade_state, TRADE_STATES, with_code=True)

    @admin.display(description="退款状态")
    def refund_status_display(self, obj: BillRow) -> str:
        return bill_state(obj.refund_status, REFUND_STATES, with_code=True)

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

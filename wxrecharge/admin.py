"""The operators' admin site: read-only bases the apps' admin modules share, link helpers,
and the start page with the money of today and the last 30 days.

The site is installed as the default one (`AdminConfig.default_site`), so every
`@admin.register` and `admin.site` in the project use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.db.models import Count, Model, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from common.money import format_fen
from wxproto.beijing import BEIJING

# Operators count days as Beijing does, whatever the server's clock says.
CHART_DAYS = 30
CHART_HEIGHT = 100


# At most this many rows a search term may match in one field (an identifier matches one).
SEARCH_LIMIT = 1000


class LargeTableAdmin(admin.ModelAdmin):
    """A changelist that costs the same at 100 rows and at 100,000.

    No count of the whole table under the filters (`show_full_result_count`), and search
    by exact identifiers (order numbers, ids, usernames), which indexes answer, instead of
    Django's case-insensitive `icontains` over every field, which scans the table.
    """

    show_full_result_count = False
    # Fields a search term is compared with exactly (also shown as search_fields).
    exact_search_fields: tuple[str, ...] = ()

    def get_search_fields(self, request):
        return self.exact_search_fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term or not self.exact_search_fields:
            return queryset, False
        # One indexed lookup per field, then the union of their ids: an OR across fields of
        # two tables makes PostgreSQL scan the whole orders table instead.
        model = queryset.model
        ids: set[int] = set()
        for field in self.exact_search_fields:
            ids.update(model._default_manager.filter(**{field: term}).values_list("pk", flat=True)[:SEARCH_LIMIT])
        return queryset.filter(pk__in=ids), False


class ReadOnlyAdmin(LargeTableAdmin):
    """Records that only change through the site's own flows (ledger, logs, WeChat's side)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """Related rows shown on a record's page; they change only through their own flows."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def change_url(obj: Model) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def changelist_url(model: type[Model], **params: object) -> str:
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def link_to(url: str, text: object) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


def link(obj: Model | None, text: object = None) -> str:
    """A link to a record's admin page, or "-" when there is none."""
    if obj is None:
        return "-"
    return link_to(change_url(obj), text if text is not None else obj)


def when(moment: datetime | None) -> str:
    """A time for a list column: ASCII, so that a narrow column breaks it at the space only."""
    return "-" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


# -- the start page ---------------------------------------------------------------------------


@dataclass
class DayTotal:
    day: date
    count: int = 0
    total: int = 0

    @property
    def yuan(self) -> str:
        return format_fen(self.total)


@dataclass
class Bar:
    x: int
    y: int
    height: int
    day: DayTotal


def _by_day(queryset: QuerySet, field: str) -> dict[date, tuple[int, int]]:
    """{Beijing day: (count, fen)} in one grouped query."""
    rows = (
        queryset.annotate(day=TruncDate(field, tzinfo=BEIJING))
        .values("day")
        .annotate(count=Count("pk"), total=Sum("amount"))
        .order_by("day")
    )
    return {row["day"]: (row["count"], row["total"] or 0) for row in rows}


def _totals(days: list[date], by_day: dict[date, tuple[int, int]]) -> list[DayTotal]:
    return [DayTotal(day, *by_day.get(day, (0, 0))) for day in days]


def _sum(totals: list[DayTotal]) -> DayTotal:
    return DayTotal(totals[-1].day, sum(t.count for t in totals), sum(t.total for t in totals))


def _bars(totals: list[DayTotal], width: int = 20) -> list[Bar]:
    """Bar geometry for the SVG chart, drawn on the server (no JavaScript)."""
    top = max((t.total for t in totals), default=0) or 1
    bars = []
    for n, t in enumerate(totals):
        height = round(t.total * CHART_HEIGHT / top)
        height = max(height, 1) if t.total else 0
        bars.append(Bar(x=n * width + 3, y=CHART_HEIGHT - height, height=height, day=t))
    return bars


def dashboard(now: datetime | None = None) -> dict:
    """Recharges (orders paid, by paid_at) and refunds (settled successfully, by settled_at)
    of today and the last 30 Beijing days, the pending orders and the open incidents."""
    from orders.models import RechargeOrder, Refund
    from payments.models import Incident

    today = timezone.localdate(now or timezone.now(), BEIJING)
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    since = datetime.combine(days[0], time.min, tzinfo=BEIJING)
    until = datetime.combine(today + timedelta(days=1), time.min, tzinfo=BEIJING)
    paid = _totals(days, _by_day(RechargeOrder.objects.filter(paid_at__gte=since, paid_at__lt=until), "paid_at"))
    refunded = _totals(
        days,
        _by_day(Refund.objects.filter(status=Refund.Status.SUCCESS, settled_at__gte=since, settled_at__lt=until), "settled_at"),
    )
    return {
        "today": today,
        "paid_today": paid[-1],
        "paid_month": _sum(paid),
        "refunded_today": refunded[-1],
        "refunded_month": _sum(refunded),
        "pending": RechargeOrder.objects.filter(status=RechargeOrder.Status.PENDING).count(),
        "pending_url": changelist_url(RechargeOrder, status__exact=RechargeOrder.Status.PENDING),
        "open_incidents": Incident.objects.filter(resolved_at__isnull=True).count(),
        "incidents_url": changelist_url(Incident, state="open"),
        "bars": _bars(paid),
        "chart_width": CHART_DAYS * 20,
        "chart_height": CHART_HEIGHT,
        "first_day": days[0],
    }


class SiteAdmin(admin.AdminSite):
    """Django's admin with the operators' figures on its start page."""

    site_header = "wxrecharge 运营后台"
    site_title = "wxrecharge"
    index_title = "运营概览"
    # WeChat's 26- to 32-digit numbers make wide lists: at a laptop's width the app sidebar
    # would push half of every list's columns out of sight. The breadcrumbs lead home instead.
    enable_nav_sidebar = False

    # The start page and the app index list the day's work first (Django sorts by name).
    APP_ORDER = ("orders", "payments", "reconciliation", "accounts", "axes", "auth", "sandbox")

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: n for n, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def index(self, request, extra_context=None):
        context = dict(extra_context or {})
        # The figures are about orders: only for those who may see orders.
        if request.user.has_perm("orders.view_rechargeorder"):
            context["dashboard"] = dashboard()
        # The last reconciled day (reconciliation/admin.py), for those who may see reconciliation.
        if request.user.has_perm("reconciliation.view_billday"):
            from reconciliation.admin import start_page_status

            context["reconciliation"] = start_page_status()
        return super().index(request, context)


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin with SiteAdmin as `admin.site` (INSTALLED_APPS names this)."""

    default_site = "wxrecharge.admin.SiteAdmin"

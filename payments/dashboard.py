"""The admin start page's figures (templates/admin/wx_dashboard.html): recharges and refunds
of today and the last 30 Beijing days, the pending orders and the open incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.admin import changelist_url
from common.money import format_fen
from orders.models import RechargeOrder, Refund
from payments.models import Incident
from wxproto.beijing import BEIJING

CHART_DAYS = 30
CHART_HEIGHT = 100


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

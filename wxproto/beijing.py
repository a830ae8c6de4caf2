"""Beijing time, WeChat's clock: every time WeChat writes (time_end, success_time, bill
lines) and every "day" of the product (a bill's day, the admin's days). The one definition
of it in the project."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# China has kept UTC+8 without daylight saving time since 1991.
BEIJING = ZoneInfo("Asia/Shanghai")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing day."""
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def beijing_date(moment: datetime) -> date:
    """The Beijing day an aware moment falls on."""
    return moment.astimezone(BEIJING).date()


def beijing_text(moment: datetime, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An aware moment as Beijing wall-clock text (WeChat's formats: "%Y%m%d%H%M%S", RFC 3339 …)."""
    return moment.astimezone(BEIJING).strftime(fmt)


def beijing_iso(moment: datetime, timespec: str = "seconds") -> str:
    """An aware moment as ISO 8601 in Beijing time, to the second unless `timespec` says
    otherwise (the site's JSON and events)."""
    return moment.astimezone(BEIJING).isoformat(timespec=timespec)

"""预收资金: what the business owes its users at the start and end of each Beijing day, and
which ledger rows moved it that day, paid money and bonus apart (docs/liability.md).

Read from the lots' moves (orders.LotMove): `LedgerEntry.post` splits every ledger row over
the user's lots into paid fen (money paid through WeChat) and bonus fen (money given), signed
as the row is. So what is owed at a moment is the sum of the moves of every row written
before it, and a day's movement is the sum of its rows' moves, on the line of their kind.
Nothing here writes; a range of days costs two queries, whatever its length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDate

from orders.models import LedgerEntry, Lot, LotMove
from wxproto.beijing import BEIJING, day_bounds

Kind = LedgerEntry.Kind


@dataclass(frozen=True)
class Line:
    """A line of the report: its key (the CSV's and the templates'), its label, and the ledger
    kinds whose moves it sums. Each kind is on exactly one line."""

    key: str
    label: str
    kinds: tuple[str, ...]


LINES: tuple[Line, ...] = (
    Line("recharge", "充值", (Kind.RECHARGE,)),
    Line("bonus", "赠送", (Kind.BONUS,)),
    # A reversal gives back what its spend took: the line is the day's net consumption.
    Line("spend", "消费", (Kind.SPEND, Kind.SPEND_REVERSAL)),
    # A refund takes paid money and removes its share of the bonus; a refund WeChat closes or
    # refuses gives both back.
    Line("refund", "退款", (Kind.REFUND, Kind.REFUND_RETURN, Kind.BONUS_REMOVAL, Kind.BONUS_RETURN)),
    Line("expiry", "赠送过期", (Kind.BONUS_EXPIRY,)),
    Line("adjustment", "调整", (Kind.ADJUSTMENT,)),
)
LINE_OF_KIND: dict[str, str] = {kind: line.key for line in LINES for kind in line.kinds}


@dataclass(frozen=True)
class Split:
    """An amount of fen as its paid and bonus parts (signed for a movement)."""

    paid: int = 0
    bonus: int = 0

    @property
    def total(self) -> int:
        return self.paid + self.bonus

    def __add__(self, other: Split) -> Split:
        return Split(self.paid + other.paid, self.bonus + other.bonus)


@dataclass(frozen=True)
class DayReport:
    """One Beijing day: what was owed at its start (`opening`, the day before's closing), each
    line's movement, and what was owed at its end (`closing`; for today, so far)."""

    day: date
    opening: Split
    lines: dict[str, Split]  # by Line.key, in the order of LINES
    closing: Split

    @property
    def movement(self) -> Split:
        """The day's lines together: closing less opening."""
        return sum(self.lines.values(), Split())

    def rows(self) -> list[tuple[Line, Split]]:
        """The lines with their labels, in the report's order."""
        return [(line, self.lines[line.key]) for line in LINES]


def day_report(day: date) -> DayReport:
    """The report of one Beijing day."""
    return series(day, 1)[0]


def series(last_day: date, days: int = 90) -> list[DayReport]:
    """The reports of `days` Beijing days up to `last_day` (included), oldest first: one
    query for what was owed before the first, one for the moves of the range grouped by
    Beijing day and ledger kind (the chart, the CSV). Raises ValueError for fewer than one day,
    and for a ledger kind that has no line (LINES must name every kind)."""
    if days < 1:
        raise ValueError("a series has at least one day")
    first_day = last_day - timedelta(days=days - 1)
    start, _ = day_bounds(first_day)
    _, end = day_bounds(last_day)
    before = LotMove.objects.filter(entry__created_at__lt=start).aggregate(paid=Sum("paid"), bonus=Sum("bonus"))
    moved = (
        LotMove.objects.filter(entry__created_at__gte=start, entry__created_at__lt=end)
        .annotate(day=TruncDate("entry__created_at", tzinfo=BEIJING))
        .values_list("day", "entry__kind")
        .annotate(paid=Sum("paid"), bonus=Sum("bonus"))
        .order_by()
    )
    by_day: dict[date, dict[str, Split]] = {}
    for day, kind, paid, bonus in moved:
        if kind not in LINE_OF_KIND:
            raise ValueError(f"ledger kind {kind!r} has no line in the liability report")
        lines = by_day.setdefault(day, {})
        key = LINE_OF_KIND[kind]
        lines[key] = lines.get(key, Split()) + Split(paid, bonus)

    reports = []
    opening = Split(before["paid"] or 0, before["bonus"] or 0)
    for n in range(days):
        day = first_day + timedelta(days=n)
        found = by_day.get(day, {})
        lines = {line.key: found.get(line.key, Split()) for line in LINES}
        closing = opening + sum(lines.values(), Split())
        reports.append(DayReport(day, opening, lines, closing))
        opening = closing
    return reports


def owed_now() -> Split:
    """What is owed right now: what the users' lots have left. The same as the sum of every
    move (each lot's paid_left and bonus_left are the sums of its moves, kept so by
    LedgerEntry.post), in one query over the lots rather than every move (the start page)."""
    left = Lot.objects.aggregate(paid=Sum("paid_left"), bonus=Sum("bonus_left"))
    return Split(left["paid"] or 0, left["bonus"] or 0)

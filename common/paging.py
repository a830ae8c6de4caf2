"""Keyset pages, newest first, for the member's lists (recharge history, statement): `before`
is the cursor of the last row shown, `<created_at iso>|<pk>`. The same cost on page 1 and page
5,000, and no COUNT(*) of the whole list (an index (user, -created_at, -id) answers it)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import Model, Q, QuerySet


def cursor_of(row: Model) -> str:
    return f"{row.created_at.astimezone(UTC).isoformat()}|{row.pk}"  # type: ignore[attr-defined]


def parse_cursor(value: str) -> tuple[datetime, int] | None:
    """The cursor's (created_at, pk); None (the first page) for anything else."""
    stamp, _, pk = value.rpartition("|")
    if not pk.isascii() or not pk.isdigit() or len(pk) > 18:
        return None
    try:
        created_at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if created_at.tzinfo is None:
        return None
    return created_at, int(pk)


def newest_first(rows: QuerySet, before: str, size: int) -> tuple[list, str, bool]:
    """One page of `rows` (ordered -created_at, -pk) after the cursor `before`: (the rows, the
    next page's cursor or "", whether this is the first page)."""
    cursor = parse_cursor(before)
    if cursor:
        created_at, pk = cursor
        # The first condition bounds the index range scan; the OR alone made PostgreSQL walk
        # every newer row (30 ms at page 4,000 of 100,000 instead of under 1).
        rows = rows.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk), created_at__lte=created_at)
    found = list(rows[: size + 1])
    more = len(found) > size
    found = found[:size]
    return found, cursor_of(found[-1]) if more else "", cursor is None

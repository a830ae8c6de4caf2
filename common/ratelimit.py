"""Fixed-window rate limits in the database: `allow("prepay:user:12", limit=10, per=60)`.

Process memory would let each gunicorn worker and each server count apart; a row per key
and window is shared by all of them, and the unique constraint makes its first insert safe.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from common.models import RateLimitWindow
from common.statements import Statement

logger = logging.getLogger(__name__)


def _window(now: datetime, per: int) -> datetime:
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % per, tz=UTC)


def allow(key: str, limit: int, per: int) -> bool:
    """Count one request for `key`; False once more than `limit` came in this `per`-second window."""
    start = _window(timezone.now(), per)
    key = key[:200]
    try:
        # Compiled statements (common/statements.py): the merchant API counts every call.
        if not _COUNT.run(key=key, window_start=start):
            try:
                with transaction.atomic():
                    _FIRST.run(key=key, window_start=start, hits=1)
                return True
            except IntegrityError:
                _COUNT.run(key=key, window_start=start)
        row = _HITS.one(key=key, window_start=start)
        return (row[0] if row else 0) <= limit
    except DatabaseError:
        # Throttling must not take the site down with it.
        logger.exception("rate limit %s could not be counted", key)
        return True


def purge(older_than: timedelta = timedelta(hours=1)) -> int:
    deleted, _ = RateLimitWindow.objects.filter(window_start__lt=timezone.now() - older_than).delete()
    return deleted


_COUNT = Statement.update(
    RateLimitWindow,
    lambda p: (
        RateLimitWindow.objects.filter(key=p("key"), window_start=p("window_start")),
        {"hits": F("hits") + 1},
    ),
)
_FIRST = Statement.insert(RateLimitWindow, ["key", "window_start", "hits"])
_HITS = Statement.select(
    RateLimitWindow,
    lambda p: RateLimitWindow.objects.filter(key=p("key"), window_start=p("window_start")).values_list("hits"),
)

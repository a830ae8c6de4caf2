"""Taking due work from a table that several runners share (webhook deliveries, WeChat
messages): rows locked with SKIP LOCKED and held until a time (`claimed_until`), so any number
of runners take different rows, and a runner that dies lets go when its hold ends."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone


def claim_due(due: QuerySet, *, order_by: tuple[str, ...], limit: int, hold: timedelta) -> list[int]:
    """Hold up to `limit` rows of `due` that no other runner holds, for `hold`; their ids."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            due.select_for_update(skip_locked=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by(*order_by)
            .values_list("pk", flat=True)[:limit]
        )
        due.model._default_manager.filter(pk__in=ids).update(claimed_until=now + hold)
    return ids

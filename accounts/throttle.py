"""Slow repeated failed sign-ins down before django-axes refuses them outright.

After LOGIN_SLOWDOWN_AFTER failures for a name or from an address, each further attempt
must wait 1, 2, 4… seconds after the last failure; an attempt that comes sooner is turned
away without checking the password (no worker sleeps). At AXES_FAILURE_LIMIT, axes locks
out for AXES_COOLOFF_TIME. Counts come from axes' table, so every app instance agrees.
"""

from __future__ import annotations

import math

from axes.helpers import get_client_ip_address
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone


def wait_seconds(request, username: str) -> int:
    """How many seconds this sign-in must still wait (0: go ahead)."""
    now = timezone.now()
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - settings.AXES_COOLOFF_TIME)
    worst, last = 0, None
    for rows in (recent.filter(username=username), recent.filter(ip_address=get_client_ip_address(request))):
        found = rows.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
        if found["failures"] and found["failures"] > worst:
            worst, last = found["failures"], found["last"]
    if worst < settings.LOGIN_SLOWDOWN_AFTER or last is None:
        return 0
    delay = 2 ** (worst - settings.LOGIN_SLOWDOWN_AFTER)
    return max(0, math.ceil(delay - (now - last).total_seconds()))

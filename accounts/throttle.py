"""Failed sign-ins: slowed down, then refused for a while, without locking out bystanders.

django-axes records every failure in the database (so every app instance agrees). A name is
refused after AXES_FAILURE_LIMIT failures within AXES_COOLOFF_TIME, from anywhere; an address
alone only after LOGIN_ADDRESS_FAILURE_LIMIT, because a carrier NAT or an office puts
thousands of people behind one address and one person's typos must not lock the others out.
Before that, from LOGIN_SLOWDOWN_AFTER failures for a name, each further attempt must wait
1, 2, 4… seconds after the last failure; one that comes sooner is turned away without
checking the password (no worker sleeps).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_parameters, get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone

logger = logging.getLogger(__name__)


class LoginAttemptHandler(AxesDatabaseHandler):
    """axes' database handler with a limit for each lockout parameter (AXES_LOCKOUT_PARAMETERS):
    AXES_FAILURE_LIMIT where the name is part of it, LOGIN_ADDRESS_FAILURE_LIMIT for the
    address alone (axes itself has one limit for all)."""

    def _counts(self, request, credentials=None) -> list[tuple[bool, int, list[tuple[int, datetime]]]]:
        """For each lockout parameter: (whether it is the address alone, its limit,
        [(failures, last failure)] newest first) within the cool-off time."""
        username = get_client_username(request, credentials)
        parameters = get_client_parameters(username, request.axes_ip_address, request.axes_user_agent, request, credentials)
        counts = []
        for params, attempts in zip(parameters, self.get_user_attempts(request, credentials), strict=True):
            by_address = "username" not in params
            limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT if by_address else settings.AXES_FAILURE_LIMIT
            counts.append(
                (by_address, limit, list(attempts.order_by("-attempt_time").values_list("failures_since_start", "attempt_time")))
            )
        return counts

    def get_failures(self, request, credentials=None) -> int:
        """What axes compares with AXES_FAILURE_LIMIT: the failures of the name, and those of
        the address alone only once they have reached their own, higher limit."""
        worst = 0
        for by_address, limit, rows in self._counts(request, credentials):
            failures = sum(n for n, _ in rows)
            if by_address:
                failures = max(failures, settings.AXES_FAILURE_LIMIT) if failures >= limit else 0
            worst = max(worst, failures)
        return worst

    def seconds_locked(self, request, credentials=None) -> tuple[int, bool]:
        """(seconds until this sign-in may be tried again, whether the address is the reason)."""
        now = timezone.now()
        seconds, reason_is_address = 0, False
        for by_address, limit, rows in self._counts(request, credentials):
            # Failures leave the count AXES_COOLOFF_TIME after they happened, the oldest first:
            # the lock lifts when the failure that brought the newest ones up to the limit leaves.
            total = 0
            for n, at in rows:
                total += n
                if total >= limit:
                    left = math.ceil((at + settings.AXES_COOLOFF_TIME - now).total_seconds())
                    if left > seconds:
                        seconds, reason_is_address = left, by_address
                    break
        return seconds, reason_is_address

    def reset_user_attempts(self, request, credentials=None) -> int:
        """After a successful sign-in, forget that name's failures only. axes would also forget
        every failure from the address, so anyone could wipe the count of the names they are
        guessing by signing in to an account of their own."""
        count, _ = AccessAttempt.objects.filter(username=get_client_username(request, credentials)).delete()
        return count


def wait_seconds(request, username: str) -> int:
    """How many seconds this sign-in must still wait (0: go ahead). Only the name's own
    failures count: someone else's typos from the same address never slow a person down."""
    now = timezone.now()
    recent = AccessAttempt.objects.filter(attempt_time__gte=now - settings.AXES_COOLOFF_TIME, username=username)
    found = recent.aggregate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
    failures, last = found["failures"] or 0, found["last"]
    # At the limit the name is locked: axes' page says so, and for how long.
    if not settings.LOGIN_SLOWDOWN_AFTER <= failures < settings.AXES_FAILURE_LIMIT or last is None:
        return 0
    delay = 2 ** (failures - settings.LOGIN_SLOWDOWN_AFTER)
    return max(0, math.ceil(delay - (now - last).total_seconds()))


def lockout(request, credentials=None) -> tuple[int, bool]:
    """(whole minutes left, whether the address is the reason) for a sign-in axes refused."""
    seconds, by_address = LoginAttemptHandler().seconds_locked(request, credentials)
    if seconds <= 0:  # no count at its limit any more (the limits changed meanwhile): the whole time
        seconds = settings.AXES_COOLOFF_TIME.total_seconds()
    return max(1, math.ceil(seconds / 60)), by_address

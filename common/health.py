"""The health checks' registry: what the admin's health panel shows and the alert watcher
(health/) alerts on. Each app registers its checks here (`@check`), as it adds start page
panels (common/admin.py) and purges (common/housekeeping.py), so that the health app need not
import every app that has something to report, nor they the health app.

A check is a function of the time answering one `Check` or a list of them (one per job, say).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

OK, WARN, RED = "ok", "warn", "red"


@dataclass(frozen=True)
class Check:
    """One row of the health panel.

    `kind` names it for the alerts (at most one alert per kind each ALERT_INTERVAL_MINUTES);
    `newest` is the time of its newest item (the latest failed notify, the moment a job fell
    silent): the watcher alerts when a red check has an item newer than what it last alerted
    on. `alert` is False for rows that only the panel shows.
    """

    kind: str
    label: str  # Chinese, as operators read it
    state: str = OK  # OK, WARN or RED
    count: int = 0
    detail: str = ""  # one line, Chinese, no secrets
    url: str = ""  # the admin list showing the items
    newest: datetime | None = None
    alert: bool = True

    @property
    def is_red(self) -> bool:
        return self.state == RED


CheckFunction = Callable[[datetime], "Check | Iterable[Check]"]
CHECKS: dict[str, CheckFunction] = {}


def check(function: CheckFunction) -> CheckFunction:
    """Register a check (a decorator), under its module and name; registering again replaces it."""
    CHECKS[f"{function.__module__}.{function.__qualname__}"] = function
    return function

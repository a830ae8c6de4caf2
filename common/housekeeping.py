"""Old records each app lets go of, purged by the order sweeper's pass (`sweep_orders`), which
runs everywhere the site runs. Apps register their purge (`purge_task`) in their own modules,
as they add start page panels (common/admin.py), so the sweeper imports none of them."""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Each deletes what its app no longer keeps and answers how many rows went.
PURGE_TASKS: dict[str, Callable[[], int]] = {}


def purge_task(name: str) -> Callable[[Callable[[], int]], Callable[[], int]]:
    """Register a purge under `name` (a decorator)."""

    def register(task: Callable[[], int]) -> Callable[[], int]:
        PURGE_TASKS[name] = task
        return task

    return register


def purge_all() -> dict[str, int]:
    """Run every registered purge; one that fails is logged and the others run."""
    purged = {}
    for name, task in PURGE_TASKS.items():
        try:
            purged[name] = task()
        except Exception:
            logger.exception("purge %s failed", name)
    return purged

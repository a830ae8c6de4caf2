"""The looping management commands' skeleton: one pass, or a pass every `interval` seconds
until SIGTERM or Ctrl-C (`--loop`), run as a systemd service or a container of its own.

A pass is never cut in half: a signal sets `stop`, which a pass may look at between its
own items and which the loop looks at between passes. Database connections are closed
between passes, so a long-running loop never keeps one that the database dropped.

Each pass of a named job leaves a heartbeat (common.models.Heartbeat): when it started and
ended, whether it succeeded, and the error if not, so that the admin's health panel shows a
job that stopped or keeps failing. In `--loop` a pass that raises is logged and recorded and
the loop goes on (a loop that died of one bad pass would be worse than one that retries);
a single pass raises as before, after its heartbeat.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime

from django.db import close_old_connections, transaction
from django.utils import timezone

from common.models import Heartbeat
from common.redact import describe

logger = logging.getLogger(__name__)


def stop_on_signals(on_signal: Callable[[], None] | None = None) -> threading.Event:
    """An event set by SIGTERM and SIGINT (and `on_signal` called, to wake a sleeper)."""
    stop = threading.Event()

    def handler(*_) -> None:
        stop.set()
        if on_signal is not None:
            on_signal()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    return stop


def repeat(one_pass: Callable[[threading.Event], None], *, loop: bool, interval: float, job: str | None = None) -> None:
    """Run `one_pass(stop)` once, or with `loop` every `interval` seconds until a signal,
    recording each pass as `job`'s heartbeat."""
    stop = stop_on_signals() if loop else threading.Event()
    while True:
        close_old_connections()
        started = timezone.now()
        beat_start(job, started)
        try:
            one_pass(stop)
        except Exception as exc:
            beat(job, interval, started, describe(exc))
            if not loop:
                raise
            logger.exception("%s: the pass failed; the next one runs in %g s", job or "loop", interval)
        else:
            beat(job, interval, started)
        if not loop or stop.wait(interval):
            break
    close_old_connections()


def beat_start(job: str | None, started: datetime) -> None:
    """A pass of `job` begins: a long pass is alive, not silent (never raises)."""
    if not job:
        return
    try:
        Heartbeat.objects.filter(job=job).update(started_at=started)
    except Exception:
        logger.exception("%s: its heartbeat could not be written", job)


def beat(job: str | None, interval: float, started: datetime, error: str = "") -> None:
    """Write `job`'s heartbeat; never raises: a job whose heartbeat cannot be written (the
    database is down) goes on with its work, and the panel shows it silent."""
    if not job:
        return
    try:
        with transaction.atomic():
            Heartbeat.record(job, interval, started, error)
    except Exception:
        logger.exception("%s: its heartbeat could not be written", job)

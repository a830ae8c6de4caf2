"""A delivery thread inside the web process, so `make run` needs no second process.

It starts with the first request a process serves (runserver or gunicorn), picks up
pending deliveries left by an earlier run, and wakes at once when a notify is queued.
Each round also settles the refunds that are due (sandbox.delivery.deliver_due does
both), so a refund settles within one idle wait of its time.
`python manage.py sandbox_deliver --loop` does the same job as a separate process.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

_wake = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def wake() -> None:
    _wake.set()


def idle_seconds() -> float:
    return max(0.05, min(1.0, settings.SANDBOX_NOTIFY_TIME_SCALE))


def run(stop: threading.Event) -> None:
    from devtools.wechat_sandbox.delivery import deliver_due

    while not stop.is_set():
        _wake.clear()
        try:
            busy = deliver_due()
        except Exception:
            logger.exception("sandbox notify delivery failed; retrying")
            busy = 0
        finally:
            close_old_connections()
        if not busy:
            _wake.wait(idle_seconds())
    connection.close()


def start(stop: threading.Event | None = None) -> threading.Thread:
    """Start the delivery thread once per process."""
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=run, args=(stop or threading.Event(),), name="sandbox-notify", daemon=True)
            _thread.start()
            logger.info("sandbox notify delivery thread started")
        return _thread


def start_on_first_request(sender, **kwargs) -> None:
    if _thread is None:
        start()

"""The looping management commands' skeleton: one pass, or a pass every `interval` seconds
until SIGTERM or Ctrl-C (`--loop`), run as a systemd service or a container of its own.

A pass is never cut in half: a signal sets `stop`, which a pass may look at between its
own items and which the loop looks at between passes. Database connections are closed
between passes, so a long-running loop never keeps one that the database dropped.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

from django.db import close_old_connections


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


def repeat(one_pass: Callable[[threading.Event], None], *, loop: bool, interval: float) -> None:
    """Run `one_pass(stop)` once, or with `loop` every `interval` seconds until a signal."""
    stop = stop_on_signals() if loop else threading.Event()
    while True:
        close_old_connections()
        one_pass(stop)
        if not loop or stop.wait(interval):
            break
    close_old_connections()

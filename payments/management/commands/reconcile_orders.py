from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from payments.reconcile import run_pass


class Command(BaseCommand):
    """Bring every order and refund to its end; once, or every --interval seconds with --loop."""

    help = (
        "Query pending orders, close expired ones, settle refunds still processing (payments/reconcile.py). "
        "Once, or with --loop every --interval seconds until SIGTERM. Several may run at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running until SIGTERM or Ctrl-C")
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between passes (default 30)")

    def handle(self, *args, loop: bool = False, interval: float = 30.0, **options):
        if interval <= 0:
            self.stderr.write("--interval must be positive")
            return
        stop = threading.Event()
        if loop:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        while True:
            close_old_connections()
            self.stdout.write(str(run_pass()))
            self.stdout.flush()
            # A pass is never cut in half: SIGTERM is seen between passes.
            if not loop or stop.wait(interval):
                break
        close_old_connections()

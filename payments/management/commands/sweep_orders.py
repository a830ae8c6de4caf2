from __future__ import annotations

from django.core.management.base import BaseCommand

from common.loop import repeat
from payments.sweeper import run_pass


class Command(BaseCommand):
    """Bring every order and refund to its end; once, or every --interval seconds with --loop."""

    help = (
        "Query pending orders, close expired ones, settle refunds still processing (payments/sweeper.py). "
        "Once, or with --loop every --interval seconds until SIGTERM. Several may run at once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running until SIGTERM or Ctrl-C")
        parser.add_argument("--interval", type=float, default=20.0, help="seconds between passes (default 20)")

    def handle(self, *args, loop: bool = False, interval: float = 20.0, **options):
        if interval <= 0:
            self.stderr.write("--interval must be positive")
            return

        def one_pass(stop) -> None:
            self.stdout.write(str(run_pass()))
            self.stdout.flush()

        # One job under either name (reconcile_orders is its former one).
        repeat(one_pass, loop=loop, interval=interval, job="sweep_orders")

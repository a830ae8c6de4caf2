from __future__ import annotations

from django.core.management.base import BaseCommand

from common.loop import stop_on_signals
from devtools.wechat_sandbox import worker
from devtools.wechat_sandbox.delivery import deliver_due
from devtools.wechat_sandbox.services import settle_due_refunds


class Command(BaseCommand):
    """Settle the sandbox's due refunds and deliver its due notifies, once or in a loop."""

    help = "Settle the sandbox's due refunds and deliver its due notifies once, or keep doing so with --loop (stops on SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep running until SIGTERM or Ctrl-C")

    def handle(self, *args, loop: bool = False, **options):
        if not loop:
            settled = settle_due_refunds(limit=1000)
            self.stdout.write(f"settled {settled} refunds, attempted {deliver_due(limit=1000)} notifies")
            return
        stop = stop_on_signals(on_signal=worker.wake)
        self.stdout.write("delivering sandbox notifies; SIGTERM to stop")
        worker.run(stop)
        self.stdout.write("stopped")

"""Deliver the outbox's events to the merchant's webhook endpoints (outbox/delivery.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from common.loop import repeat
from outbox import delivery


class Command(BaseCommand):
    help = "Deliver due webhook events; with --loop, every --interval seconds until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep delivering until SIGTERM or Ctrl-C")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes (--loop)")

    def handle(self, loop, interval, **options):
        def one_pass(stop):
            tried = delivery.run_pass(stop)
            if tried and options["verbosity"] > 1:
                self.stdout.write(f"{tried} deliveries tried")

        repeat(one_pass, loop=loop, interval=interval, job="deliver_webhooks")

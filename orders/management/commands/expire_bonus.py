"""Expire the bonus whose date has passed (docs/stored-value.md#bonus-expiry), and announce
the bonus about to expire (event bonus.expiring, docs/messages.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from common.loop import repeat
from orders.models import Lot


class Command(BaseCommand):
    help = (
        "Remove what is left of each bonus past its date, with a 赠送过期 ledger row, and announce the bonus "
        "expiring within BONUS_REMINDER_DAYS; with --loop, every --interval seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep expiring until SIGTERM or Ctrl-C")
        parser.add_argument("--interval", type=float, default=300.0, help="seconds between passes (--loop)")

    def handle(self, loop, interval, **options):
        def one_pass(stop):
            expired, fen = Lot.expire_due(stop)
            if expired:
                self.stdout.write(f"赠送过期：{expired} 笔，共 {fen} 分")
            told = Lot.remind_expiring()
            if told:
                self.stdout.write(f"赠送即将过期提醒：{told} 位会员")

        repeat(one_pass, loop=loop, interval=interval, job="expire_bonus")

from __future__ import annotations

import logging
import re
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from common.loop import repeat
from reconciliation.models import BillDay, beijing_today
from reconciliation.services import LOOKBACK_DAYS, DateRefused, DayBusy, due_days, reconcile_day, summary

logger = logging.getLogger(__name__)

# Exit codes: 0 reconciled (已平 or 有差异); 1 the bill could not be downloaded or did not verify
# (or an earlier result was kept after a failed rerun); 2 a date that cannot be reconciled
# (today, the future, not a date); 3 not done yet, run again later (未就绪, or another runner has it).
EXIT_FAILED, EXIT_REFUSED, EXIT_LATER = 1, 2, 3
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Command(BaseCommand):
    """Check a day's WeChat trade bill against our books (reconciliation/services.py)."""

    help = (
        "Download a Beijing day's WeChat trade bill (default: yesterday), verify it and compare it with the "
        "orders and refunds of that day: lost notifies are settled, anything else becomes an incident. "
        "With --loop, every --interval seconds, each day of the last --days whose bill is ready and that is "
        "not reconciled yet, until SIGTERM. Exit codes: 0 done, 1 failed, 2 refused date, 3 try again later."
    )

    def add_arguments(self, parser):
        parser.add_argument("--date", help="the Beijing day, YYYY-MM-DD (default: yesterday)")
        parser.add_argument("--loop", action="store_true", help="keep running until SIGTERM or Ctrl-C")
        parser.add_argument("--interval", type=float, default=600.0, help="seconds between passes (default 600)")
        parser.add_argument(
            "--days", type=int, default=LOOKBACK_DAYS, help=f"--loop: how many days back to look (default {LOOKBACK_DAYS})"
        )

    def handle(
        self, *args, date: str | None = None, loop: bool = False, interval: float = 600.0, days: int = LOOKBACK_DAYS, **options
    ):
        if loop:
            if date:
                raise CommandError("--loop reconciles the days that are due; it takes no --date", returncode=EXIT_REFUSED)
            if interval <= 0 or days <= 0:
                raise CommandError("--interval and --days must be positive", returncode=EXIT_REFUSED)
            self._loop(interval, days)
            return
        day = self._day(date)
        code = self._run(day)
        if code:
            raise CommandError(f"{day.isoformat()} 未完成对账", returncode=code)

    def _day(self, text: str | None) -> date:
        if text is None:
            return beijing_today() - timedelta(days=1)
        try:
            if not DATE.fullmatch(text):
                raise ValueError(text)
            return date.fromisoformat(text)
        except ValueError:
            raise CommandError(f"--date {text!r} 不是 YYYY-MM-DD 格式的日期", returncode=EXIT_REFUSED) from None

    def _run(self, day: date) -> int:
        """Reconcile one day, print its line; the exit code it deserves."""
        try:
            bill_day = reconcile_day(day)
        except DateRefused as exc:
            self.stderr.write(f"{day.isoformat()}: 拒绝 — {exc}")
            return EXIT_REFUSED
        except DayBusy as exc:
            self.stdout.write(f"{day.isoformat()}: 跳过 — {exc}")
            return EXIT_LATER
        self.stdout.write(summary(bill_day))
        self.stdout.flush()
        if bill_day.status == BillDay.Status.PENDING:
            return EXIT_LATER
        if not bill_day.is_complete or bill_day.last_error:
            return EXIT_FAILED
        return 0

    def _loop(self, interval: float, days: int) -> None:
        def one_pass(stop) -> None:
            due = due_days(lookback=days)
            done = 0
            for day in due:
                if stop.is_set():  # a day is never cut in half: SIGTERM is seen between days
                    break
                try:
                    done += self._run(day) == 0
                except Exception:  # one failing day must not stop the loop
                    logger.exception("reconcile_bill: %s failed", day)
                    self.stderr.write(f"{day.isoformat()}: 出错 — 见日志")
            self.stdout.write(f"reconciled {done} of {len(due)} due days")
            self.stdout.flush()

        repeat(one_pass, loop=True, interval=interval, job="reconcile_bill")

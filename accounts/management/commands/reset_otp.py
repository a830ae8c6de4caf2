"""Remove an operator's second factor (docs/operations.md#两步验证): a lost phone and no recovery
code left. They enrol a new authenticator at their next sign-in to the admin."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts import two_factor
from accounts.models import User


class Command(BaseCommand):
    help = "Reset an operator's two-factor sign-in (authenticator and recovery codes); recorded in the audit log."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", required=True, help="why (kept in the audit log), e.g. 手机丢失，已电话核实本人")

    def handle(self, username, reason, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not reason.strip():
            raise CommandError("--reason must say why")
        removed = two_factor.reset(user, reason=f"reset_otp 命令：{reason.strip()}")
        self.stdout.write(f"reset two-factor sign-in of {username}: {removed} device(s) removed; enrols again at next sign-in")

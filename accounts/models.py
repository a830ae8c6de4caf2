from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A site user: Django's username/password auth plus the WeChat identities.

    `balance` is in fen. It only changes together with a ledger row (orders.LedgerEntry),
    and the database refuses a negative value.
    """

    openid = models.CharField(
        "公众号 openid", max_length=64, unique=True, null=True, blank=True, editable=False
    )
    mp_openid = models.CharField(
        "小程序 openid", max_length=64, unique=True, null=True, blank=True, editable=False
    )
    balance = models.BigIntegerField("余额（分）", default=0, editable=False)
    # code2session's session_key: kept on the server only (never answered, logged or shown).
    mp_session_key = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name = "用户"
        verbose_name_plural = "用户"
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="user_balance_not_negative"),
        ]

    @property
    def balance_yuan(self) -> str:
        return format_fen(self.balance)

    def credit(self, amount: int, kind: str, order=None, reason: str = ""):
        """Add `amount` fen (negative to debit) and write its ledger row.

        The caller holds this user's row lock (`select_for_update()` inside
        `transaction.atomic()`), so `self.balance` is current; the database refuses a
        negative balance and a second recharge row for one order.
        """
        from orders.models import LedgerEntry

        User.objects.filter(pk=self.pk).update(balance=models.F("balance") + amount)
        self.balance += amount
        return LedgerEntry.objects.create(user=self, amount=amount, kind=kind, order=order,
                                          balance_after=self.balance, reason=reason)


def format_fen(fen: int) -> str:
    """¥ text for an amount in fen: 1990 -> "19.90"."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"

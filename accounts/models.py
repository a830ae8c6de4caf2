from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models, transaction

from common.money import format_fen
from common.statements import Statement


class User(AbstractUser):
    """A site user: Django's username/password auth plus the WeChat identities.

    `balance` is in fen. It only changes together with a ledger row (`LedgerEntry.post` in
    orders.models), and the database refuses a negative value.
    """

    openid = models.CharField("公众号 openid", max_length=64, unique=True, null=True, blank=True, editable=False)
    miniprogram_openid = models.CharField(
        "小程序 openid", max_length=64, unique=True, null=True, blank=True, editable=False, db_column="mp_openid"
    )
    # The same for one person in the 公众号 and the mini program when both are linked to one
    # open-platform account: it is how a login through either reaches the same account.
    unionid = models.CharField("unionid", max_length=64, unique=True, null=True, blank=True, editable=False)
    balance = models.BigIntegerField("余额（分）", default=0, editable=False)
    # code2session's session_key: kept on the server only (never answered, logged or shown).
    miniprogram_session_key = models.CharField(max_length=64, blank=True, editable=False, db_column="mp_session_key")

    class Meta:
        verbose_name = "用户"
        verbose_name_plural = "用户"
        constraints = [
            models.CheckConstraint(condition=models.Q(balance__gte=0), name="user_balance_not_negative"),
        ]

    @classmethod
    def move_balance(cls, user_id: int, amount: int) -> int:
        """Change a balance by `amount` fen (negative: a debit) under the user's row lock, in
        the caller's transaction; the new balance. Only LedgerEntry.post calls it: a balance
        moves together with its ledger row. Raises ValueError, with the balance there was,
        rather than go below zero (the database refuses it too).

        Every notify comes through here: compiled statements (common/statements.py)."""
        with transaction.atomic(savepoint=False):
            (before,) = _LOCK_BALANCE.one(id=user_id)
            if before + amount < 0:
                raise ValueError(before)
            _SET_BALANCE.run(pk=user_id, balance=before + amount)
        return before + amount

    @classmethod
    def locked_balance(cls, user_id: int) -> int:
        """Lock the user's row in the caller's transaction (what moves with the balance is
        read under it: the lots of stored value); the balance."""
        (balance,) = _LOCK_BALANCE.one(id=user_id)
        return balance

    def save(self, *args, **kwargs):
        """A full save of an existing user (the admin's form, a password change) writes every
        column but `balance`: the value read at the start of a request may be stale by now,
        and the balance only moves with a ledger row (`LedgerEntry.post`)."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "balance"]
        super().save(*args, **kwargs)

    @property
    def balance_yuan(self) -> str:
        return format_fen(self.balance)


_LOCK_BALANCE = Statement.select(User, lambda p: User.objects.select_for_update().filter(pk=p("id")).values_list("balance"))
_SET_BALANCE = Statement.update_by_pk(User, ["balance"])

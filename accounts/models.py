from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from django.utils import timezone

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
    unionid = models.CharField("开放平台 unionid", max_length=64, unique=True, null=True, blank=True, editable=False)
    balance = models.BigIntegerField("余额（分）", default=0, editable=False)
    # The member's choice on their account page: WeChat messages about their money (充值、退款、
    # 消费 …) are sent only while it is on (docs/messages.md).
    wechat_messages = models.BooleanField("接收微信消息通知", default=True, db_default=True)
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

    def set_wechat_messages(self, wanted: bool) -> None:
        """The member's switch for WeChat messages about their money (我的, or the mini program)."""
        type(self).objects.filter(pk=self.pk).update(wechat_messages=wanted)
        self.wechat_messages = wanted

    @property
    def balance_yuan(self) -> str:
        return format_fen(self.balance)

    def unbind_wechat(self, app: str, operator, reason: str) -> WeChatUnbinding:
        """An operator takes the account's openid of one app (`app`: "openid" for the 公众号,
        "miniprogram_openid") off it, with a reason, on the record (WeChatUnbinding): the
        person binds again at their next sign-in. The unionid goes too when no app's openid is
        left (else it would sign the same WeChat straight back in). Raises ValueError."""
        reason = reason.strip()
        if app not in WeChatUnbinding.App.values:
            raise ValueError("未知的微信应用")
        if not reason:
            raise ValueError("请填写解绑原因")
        with transaction.atomic():
            user = type(self).objects.select_for_update().get(pk=self.pk)
            openid = getattr(user, app)
            if not openid:
                raise ValueError("该账户没有绑定这个应用的微信")
            other_app = "miniprogram_openid" if app == "openid" else "openid"
            if not user.has_usable_password() and not getattr(user, other_app):
                # Made by 微信快捷登录: with no password and no WeChat left, nobody could reach it again.
                raise ValueError("该账户没有设置密码，解绑后将无法登录、余额无法使用；请先让用户设置密码")
            setattr(user, app, None)
            fields = [app]
            other = "miniprogram_openid" if app == "openid" else "openid"
            unionid = ""
            if not getattr(user, other) and user.unionid:
                unionid, user.unionid = user.unionid, None
                fields.append("unionid")
            if app == "miniprogram_openid":
                user.miniprogram_session_key = ""
                fields.append("miniprogram_session_key")
            type(self).objects.filter(pk=user.pk).update(**{name: getattr(user, name) for name in fields})
            record = WeChatUnbinding.objects.create(
                user=user, app=app, openid=openid, unionid=unionid, reason=reason[:200], operator=operator
            )
        for name in fields:
            setattr(self, name, getattr(user, name))
        return record


class WeChatUnbinding(models.Model):
    """An operator's unbinding of a user's WeChat (who, which app, the openid taken off, why, when)."""

    class App(models.TextChoices):
        OFFICIAL = "openid", "公众号"
        MINIPROGRAM = "miniprogram_openid", "小程序"

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="wechat_unbindings", verbose_name="用户")
    app = models.CharField("应用", max_length=20, choices=App.choices)
    openid = models.CharField("解绑的 openid", max_length=64)
    unionid = models.CharField("一并解除的 unionid", max_length=64, blank=True)
    reason = models.CharField("原因", max_length=200)
    operator = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="操作人")
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "微信解绑记录"
        verbose_name_plural = "微信解绑记录"
        ordering = ["-created_at", "-pk"]
        permissions = [("unbind_wechat", "可解绑用户的微信")]

    def __str__(self) -> str:
        return f"{self.user} {self.get_app_display()} {self.openid}"


_LOCK_BALANCE = Statement.select(User, lambda p: User.objects.select_for_update().filter(pk=p("id")).values_list("balance"))
_SET_BALANCE = Statement.update_by_pk(User, ["balance"])


class AccessToken(models.Model):
    """The access_token of one of our WeChat apps (the 公众号's, the mini program's), shared by
    every process and server through this row (accounts/wechat_token.py). Never shown, never
    logged."""

    appid = models.CharField("appid", max_length=64, primary_key=True)
    token = models.CharField(max_length=512, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # A claim: the process refreshing the token now, until then (a crashed one's claim lapses).
    refreshing_until = models.DateTimeField(null=True, blank=True, editable=False)
    refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "接口调用凭据"
        verbose_name_plural = "接口调用凭据"

    def __str__(self) -> str:  # never the token
        return self.appid

    def __repr__(self) -> str:
        return f"AccessToken(appid={self.appid!r}, expires_at={self.expires_at!r})"

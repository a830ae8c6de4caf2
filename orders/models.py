"""Recharge orders and the balance ledger. Money is integer fen."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import format_fen


class RechargeOrder(models.Model):
    class Status(models.IntegerChoices):
        PENDING = 0, "待支付"
        PAID = 1, "已支付"
        CLOSED = 2, "已关闭"
        REFUNDED = 3, "已退款"

    class Channel(models.TextChoices):
        JSAPI = "jsapi", "公众号"
        MINIPROGRAM = "miniprogram", "小程序"

    SCENE_CODES = {Channel.JSAPI: "10", Channel.MINIPROGRAM: "20"}

    out_trade_no = models.CharField("商户订单号", max_length=32, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recharge_orders",
                             verbose_name="用户")
    amount = models.PositiveBigIntegerField("金额（分）", editable=False)
    status = models.PositiveSmallIntegerField("状态", choices=Status.choices, default=Status.PENDING, editable=False)
    channel = models.CharField("渠道", max_length=16, choices=Channel.choices, editable=False)
    openid = models.CharField("下单 openid", max_length=128, editable=False)
    prepay_id = models.CharField(max_length=64, blank=True, editable=False)
    prepay_expires_at = models.DateTimeField("prepay_id 有效期", null=True, blank=True, editable=False)
    expires_at = models.DateTimeField("支付截止（time_expire）", editable=False)
    transaction_id = models.CharField("微信支付单号", max_length=32, unique=True, null=True, blank=True, editable=False)
    paid_at = models.DateTimeField("支付时间", null=True, blank=True, editable=False)
    refunded_amount = models.PositiveBigIntegerField("已退款（分）", default=0, editable=False)
    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "充值订单"
        verbose_name_plural = "充值订单"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "status", "channel", "amount"], name="order_reuse_idx"),
            models.Index(fields=["status", "created_at"], name="order_status_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="order_amount_positive"),
            models.CheckConstraint(condition=models.Q(refunded_amount__lte=models.F("amount")),
                                   name="order_refund_within_amount"),
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @classmethod
    def new_out_trade_no(cls, channel: str, now: datetime | None = None) -> str:
        """Beijing timestamp + scene code + random digits: 14 + 2 + 10 = 26 characters."""
        stamp = timezone.localtime(now or timezone.now()).strftime("%Y%m%d%H%M%S")
        return stamp + cls.SCENE_CODES[channel] + "".join(secrets.choice("0123456789") for _ in range(10))

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    @property
    def is_settled(self) -> bool:
        """Paid at some point (so credited): paid, or refunded afterwards."""
        return self.transaction_id is not None

    def mark_paid(self, transaction_id: str, paid_at: datetime) -> None:
        """Pending (or closed, when WeChat took the money anyway) -> paid. Caller holds the row lock."""
        self.status = self.Status.PAID
        self.transaction_id = transaction_id
        self.paid_at = paid_at
        self.save(update_fields=["status", "transaction_id", "paid_at", "updated_at"])

    def close(self) -> None:
        """Pending -> closed. Caller holds the row lock."""
        self.status = self.Status.CLOSED
        self.save(update_fields=["status", "updated_at"])

    def prepay_is_valid(self, now: datetime | None = None) -> bool:
        return bool(self.prepay_id and self.prepay_expires_at and self.prepay_expires_at > (now or timezone.now()))


class LedgerEntry(models.Model):
    """Every change of a balance. A user's balance is the sum of their rows."""

    class Kind(models.TextChoices):
        RECHARGE = "recharge", "充值"
        REFUND = "refund", "退款"
        ADJUSTMENT = "adjustment", "调整"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries",
                             verbose_name="用户")
    amount = models.BigIntegerField("变动（分）")
    kind = models.CharField("类型", max_length=16, choices=Kind.choices)
    order = models.ForeignKey(RechargeOrder, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="ledger_entries", verbose_name="订单")
    balance_after = models.BigIntegerField("变动后余额（分）")
    reason = models.CharField("说明", max_length=200, blank=True)
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "余额流水"
        verbose_name_plural = "余额流水"
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A paid order is credited exactly once, whatever the code does.
            models.UniqueConstraint(fields=["order"], condition=models.Q(kind="recharge"),
                                    name="ledger_one_recharge_per_order"),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="ledger_balance_after_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_fen(self.amount)}"

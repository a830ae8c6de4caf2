"""The notification log: every notify WeChat Pay posts, kept before anything else happens."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Notification(models.Model):
    class Kind(models.TextChoices):
        PAYMENT = "payment", "支付通知"
        REFUND = "refund", "退款通知"

    class Outcome(models.TextChoices):
        RECEIVED = "received", "已接收"
        APPLIED = "applied", "已入账"
        DUPLICATE = "duplicate", "重复（已入账过）"
        IGNORED = "ignored", "无需处理"
        REJECTED = "rejected", "已拒绝"
        INCIDENT = "incident", "异常（需人工处理）"
        ERROR = "error", "处理失败"

    kind = models.CharField("类型", max_length=8, choices=Kind.choices)
    raw_body = models.TextField("原文")
    remote_addr = models.GenericIPAddressField("来源地址", null=True, blank=True)
    received_at = models.DateTimeField("接收时间", default=timezone.now, db_index=True)
    signature_valid = models.BooleanField("签名有效", null=True)
    out_trade_no = models.CharField("商户订单号", max_length=64, blank=True, db_index=True)
    outcome = models.CharField("处理结果", max_length=10, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.TextField("说明", blank=True)

    class Meta:
        verbose_name = "通知日志"
        verbose_name_plural = "通知日志"
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.out_trade_no or '-'} {self.get_outcome_display()}"

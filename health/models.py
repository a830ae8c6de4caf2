"""What the alert watcher keeps: each alert as sent (or not), and per alert kind what it last
alerted on and what it has held back since (health/alerts.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

# Held-back alerts' one-line summaries kept for the next alert, newest last.
SUMMARY_LINES = 5


class Alert(models.Model):
    """One alert: its text, when and where it went, and how that went. Written before it is
    sent (SENDING) and finished after, so that a send that died halfway still shows."""

    class Outcome(models.TextChoices):
        SENDING = "sending", "发送中"
        SENT = "sent", "已发送"
        PARTIAL = "partial", "部分渠道失败"
        FAILED = "failed", "发送失败"

    kind = models.CharField("类别", max_length=100)
    label = models.CharField("名称", max_length=100)
    text = models.TextField("内容")
    held_back = models.PositiveIntegerField("合并的告警", default=0)
    created_at = models.DateTimeField("时间", default=timezone.now, db_index=True)
    sent_at = models.DateTimeField("发送完成", null=True, blank=True)
    # Each channel and how it went, e.g. "企业微信群机器人：成功；邮件：失败".
    channels = models.CharField("渠道", max_length=200, blank=True)
    outcome = models.CharField("结果", max_length=10, choices=Outcome.choices, default=Outcome.SENDING)
    # Redacted: never the robot's key.
    error = models.CharField("错误", max_length=300, blank=True)

    class Meta:
        verbose_name = "告警记录"
        verbose_name_plural = "告警记录"
        ordering = ["-created_at", "-pk"]
        permissions = [("view_health", "可查看健康面板")]

    def __str__(self) -> str:
        return f"{self.label} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def failed(self) -> bool:
        return self.outcome in (self.Outcome.FAILED, self.Outcome.PARTIAL)


class AlertState(models.Model):
    """One row per alert kind, locked while the watcher decides whether to send: so that of
    several workers one alerts, and at most once per ALERT_INTERVAL_MINUTES."""

    kind = models.CharField(max_length=100, unique=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    # The newest item an alert (sent or held back) told of: only newer ones are news.
    alerted_upto = models.DateTimeField(null=True, blank=True)
    held_back = models.PositiveIntegerField(default=0)
    held_summary = models.TextField(blank=True)

    class Meta:
        verbose_name = "告警状态"
        verbose_name_plural = "告警状态"

    def __str__(self) -> str:
        return self.kind

    def is_news(self, newest: datetime | None) -> bool:
        """Whether a red check with this newest item is something not alerted on yet."""
        return self.alerted_upto is None or (newest is not None and newest > self.alerted_upto)

    def may_send(self, now: datetime, every: timedelta) -> bool:
        return self.last_sent_at is None or now - self.last_sent_at >= every

    def hold(self, line: str, newest: datetime | None, now: datetime) -> None:
        """Count an alert not sent (within the interval) and keep its summary for the next."""
        self.held_back += 1
        self.held_summary = keep_last([*self.held_summary.splitlines(), line])
        self.alerted_upto = max(filter(None, [newest, self.alerted_upto]), default=now)
        self.save(update_fields=["held_back", "held_summary", "alerted_upto"])

    def sent(self, newest: datetime | None, now: datetime) -> None:
        """An alert goes out now, carrying what was held back."""
        self.last_sent_at = now
        self.alerted_upto = max(filter(None, [newest, self.alerted_upto]), default=now)
        self.held_back, self.held_summary = 0, ""
        self.save(update_fields=["last_sent_at", "alerted_upto", "held_back", "held_summary"])

    @classmethod
    def requeue(cls, kind: str, count: int, lines: list[str]) -> None:
        """Alerts that no channel took count as held back again, for the next alert to carry."""
        with transaction.atomic():
            state = cls.objects.select_for_update().get(kind=kind)
            state.held_back += count
            state.held_summary = keep_last([*lines, *state.held_summary.splitlines()])
            state.save(update_fields=["held_back", "held_summary"])


def keep_last(lines: list[str]) -> str:
    return "\n".join(lines[-SUMMARY_LINES:])

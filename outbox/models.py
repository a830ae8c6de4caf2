"""The transactional outbox (docs/webhooks.md): events written in the same transaction as the
money they announce, and their deliveries to the merchant's webhook endpoints, retried on a
schedule by `deliver_webhooks` (outbox/delivery.py), each attempt logged.

An event is one INSERT (`emit`), cheap enough for the notify path; the worker fans it out to
the endpoints subscribed to its type when it first sees it, so an endpoint receives the
events that happened after it was added. Nothing here imports an app: the books call `emit`.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.housekeeping import purge_task
from common.statements import Statement

# The event types, and what each says (docs/webhooks.md#events).
EVENT_TYPES = {
    "recharge.succeeded": "充值成功",
    "refund.succeeded": "退款成功",
    "refund.failed": "退款失败（已退回余额）",
    "charge.succeeded": "会员消费",
    "charge.reversed": "消费撤销",
    "balance.adjusted": "余额调整",
    "bonus.expiring": "赠送即将过期",
    "bonus.expired": "赠送过期",
}
# After the first attempt: wait this long before each retry; then the delivery has failed.
RETRY_SCHEDULE = [
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=12),
    timedelta(hours=24),
]


def url_problem(url: str) -> str:
    """Why `url` cannot be a webhook endpoint here ("" when it can): https (except where
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES allows http) and a port that exists."""
    if not url.startswith("https://") and not (settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES and url.startswith("http://")):
        return "Webhook 地址必须是 https 地址"
    try:
        _ = urlsplit(url).port
    except ValueError:
        return "Webhook 地址的端口无效"
    return ""


def _event_id() -> str:
    return "evt_" + secrets.token_hex(12)


class Event(models.Model):
    """Something that happened to the money, to announce: its id is the `webhook-id`."""

    event_id = models.CharField("事件编号", max_length=40, unique=True, editable=False)
    type = models.CharField("类型", max_length=40, choices=list(EVENT_TYPES.items()))
    data = models.JSONField("内容")
    created_at = models.DateTimeField("时间", default=timezone.now, db_index=True)
    # Set by the worker once it has made this event's deliveries.
    dispatched_at = models.DateTimeField("派发时间", null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "事件"
        verbose_name_plural = "事件"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["created_at"], name="event_undispatched_idx", condition=models.Q(dispatched_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


def emit(event_type: str, data: dict) -> str:
    """Write an event in the caller's transaction (one INSERT); its id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event_id = _event_id()
    _INSERT_EVENT.run(event_id=event_id, type=event_type, data=data, created_at=timezone.now(), dispatched_at=None)
    return event_id


class WebhookEndpoint(models.Model):
    """Where the merchant's server hears about balance changes. The secret is shown once."""

    url = models.URLField("地址", max_length=500)
    events = models.JSONField("订阅事件", default=list)
    description = models.CharField("说明", max_length=100, blank=True)
    secret = models.CharField(max_length=80, editable=False)
    is_active = models.BooleanField("启用", default=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)

    class Meta:
        verbose_name = "Webhook 地址"
        verbose_name_plural = "Webhook 地址"
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:  # never the secret
        return f"WebhookEndpoint({self.pk}, {self.url!r})"

    @staticmethod
    def new_secret() -> str:
        """Standard Webhooks' form: "whsec_" and the base64 of 24 random bytes (the HMAC key)."""
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

    @property
    def key(self) -> bytes:
        return base64.b64decode(self.secret.removeprefix("whsec_"))

    @classmethod
    def add(cls, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
        unknown = set(events) - set(EVENT_TYPES)
        if unknown or not events:
            raise ValueError(f"未知的事件：{', '.join(sorted(unknown))}" if unknown else "请至少订阅一种事件")
        problem = url_problem(url)
        if problem:
            raise ValueError(problem)
        endpoint = cls(url=url, events=sorted(set(events)), description=description[:100], secret=cls.new_secret())
        endpoint.full_clean()
        endpoint.save()
        return endpoint

    def roll_secret(self) -> str:
        self.secret = self.new_secret()
        self.save(update_fields=["secret"])
        return self.secret


class Delivery(models.Model):
    """One event to one endpoint: pending until it is answered 2xx, or failed after the last retry."""

    class Status(models.TextChoices):
        PENDING = "pending", "待发送"
        SUCCEEDED = "succeeded", "已送达"
        FAILED = "failed", "失败"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", verbose_name="事件")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name="Webhook 地址"
    )
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField("尝试次数", default=0)
    next_attempt_at = models.DateTimeField("下次尝试", default=timezone.now)
    # A runner that took it has it until then (it dies: another takes it after).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField("最近尝试", null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField("最近应答", null=True, blank=True)
    last_error = models.CharField("最近错误", max_length=300, blank=True)
    delivered_at = models.DateTimeField("送达时间", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = "Webhook 推送"
        verbose_name_plural = "Webhook 推送"
        ordering = ["-created_at", "-pk"]
        permissions = [("resend_delivery", "可以重新发送 Webhook 推送")]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="delivery_one_per_event_endpoint")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx", condition=models.Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint}"

    def resend(self) -> None:
        """An operator's 重新发送: pending again, due now, with a fresh schedule."""
        type(self).objects.filter(pk=self.pk).update(
            status=self.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_until=None
        )
        self.refresh_from_db()


class Attempt(models.Model):
    """One POST of a delivery, as it went."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name="推送")
    attempted_at = models.DateTimeField("时间", default=timezone.now)
    status_code = models.PositiveSmallIntegerField("应答状态", null=True, blank=True)
    answer = models.CharField("应答（前 500 字）", max_length=500, blank=True)
    error = models.CharField("错误", max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField("耗时（毫秒）", default=0)

    class Meta:
        verbose_name = "推送尝试"
        verbose_name_plural = "推送尝试"
        ordering = ["-attempted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"


_INSERT_EVENT = Statement.insert(Event, ["event_id", "type", "data", "created_at", "dispatched_at"])


@purge_task("webhook events")
def purge_events() -> int:
    """Events older than WEBHOOK_LOG_RETENTION_DAYS with no delivery still pending go, with
    their deliveries and attempts."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    pending = Delivery.objects.filter(event=models.OuterRef("pk"), status=Delivery.Status.PENDING)
    old = Event.objects.filter(created_at__lt=cutoff, dispatched_at__isnull=False).exclude(models.Exists(pending))
    deleted, _ = old.delete()
    return deleted

"""What we tell people through WeChat (docs/messages.md): the templates an operator configures,
the mini program's subscribe grants, and each outgoing call to WeChat (a 公众号 template
message, a mini-program subscribe message, a shipping record), retried on a schedule by the
outbox's worker with every attempt logged.

The books never write here: they write outbox events, in the transaction that moves the money,
and the worker turns each event into its messages when it dispatches it (messaging/compose.py),
in that dispatch's transaction. Sending (messaging/sending.py) happens outside any transaction.
"""

from __future__ import annotations

import re
import string
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from common.housekeeping import purge_task

# A template's keyword names: WeChat's typed keywords (thing1, amount2 …) or the old ones
# (first, keyword1 …, remark).
KEYWORD = re.compile(r"^[a-z_]{1,30}[0-9]{0,3}$")
KEYWORDS_PER_TEMPLATE = 20


class Kind(models.TextChoices):
    """What happened, that a member hears about."""

    RECHARGE = "recharge", "充值成功"
    REFUND_SUCCEEDED = "refund_succeeded", "退款成功"
    REFUND_FAILED = "refund_failed", "退款失败"
    CHARGE = "charge", "消费成功"
    REVERSAL = "reversal", "消费撤销"
    BONUS_EXPIRING = "bonus_expiring", "赠送即将过期"


# The outbox's event types that are told to the member, and as what.
EVENT_KINDS = {
    "recharge.succeeded": Kind.RECHARGE,
    "refund.succeeded": Kind.REFUND_SUCCEEDED,
    "refund.failed": Kind.REFUND_FAILED,
    "charge.succeeded": Kind.CHARGE,
    "charge.reversed": Kind.REVERSAL,
    "bonus.expiring": Kind.BONUS_EXPIRING,
}

# What a template's keywords may be filled with, per kind: {name} in a keyword's text.
FIELDS: dict[str, dict[str, str]] = {
    Kind.RECHARGE: {
        "order": "订单号",
        "amount": "充值金额（¥100.00）",
        "bonus": "赠送金额",
        "balance": "当前余额",
        "time": "充值时间",
    },
    Kind.REFUND_SUCCEEDED: {
        "order": "订单号",
        "refund": "退款单号",
        "amount": "退款金额",
        "balance": "当前余额",
        "time": "退款时间",
    },
    Kind.REFUND_FAILED: {
        "order": "订单号",
        "refund": "退款单号",
        "amount": "退款金额",
        "balance": "当前余额（已退回）",
        "time": "时间",
    },
    Kind.CHARGE: {
        "charge": "消费单号",
        "amount": "消费金额",
        "balance": "当前余额",
        "store": "门店",
        "description": "消费说明",
        "time": "消费时间",
    },
    Kind.REVERSAL: {
        "charge": "消费单号",
        "reversal": "撤销单号",
        "amount": "撤销金额",
        "balance": "当前余额",
        "store": "门店",
        "reason": "撤销原因",
        "time": "时间",
    },
    Kind.BONUS_EXPIRING: {"amount": "即将过期的赠送金额", "expires_on": "最后有效日", "balance": "当前余额", "time": "时间"},
}
COMMON_FIELDS = {"site": "商户名称（SITE_NAME）"}


def fields_for(kind: str) -> dict[str, str]:
    return {**FIELDS.get(kind, {}), **COMMON_FIELDS}


class Channel(models.TextChoices):
    OFFICIAL = "official", "公众号模板消息"
    MINIPROGRAM = "miniprogram", "小程序订阅消息"
    SHIPPING = "shipping", "小程序发货信息"


class MessageTemplate(models.Model):
    """One kind of message on one channel: the template the merchant chose in WeChat's
    console (its id) and what fills each of its keywords."""

    channel = models.CharField(
        "渠道",
        max_length=12,
        choices=[(Channel.OFFICIAL, Channel.OFFICIAL.label), (Channel.MINIPROGRAM, Channel.MINIPROGRAM.label)],
    )
    kind = models.CharField("消息", max_length=20, choices=Kind.choices)
    template_id = models.CharField("模板 ID", max_length=128, help_text="在公众号或小程序后台选用模板后得到的模板 ID")
    title = models.CharField("模板标题", max_length=40, blank=True, help_text="仅供识别，如「充值成功通知」")
    keywords = models.JSONField(
        "关键词与内容",
        default=dict,
        help_text='模板的每个关键词及其内容，内容中的 {amount} 等由本系统填写，如 {"amount2": "{amount}", "thing4": "{site}"}',
    )
    page = models.CharField(
        "小程序页面",
        max_length=200,
        blank=True,
        help_text="订阅消息点开的小程序页面，可含 {order} 等；留空则点开不跳转。公众号模板消息打开本站的订单或余额明细页",
    )
    is_active = models.BooleanField("启用", default=True)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "消息模板"
        verbose_name_plural = "消息模板"
        ordering = ["channel", "kind"]
        constraints = [models.UniqueConstraint(fields=["channel", "kind"], name="message_template_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}·{self.get_kind_display()}"

    def clean(self) -> None:
        self.template_id = self.template_id.strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", self.template_id or ""):
            raise ValidationError({"template_id": "模板 ID 只含字母、数字、- 和 _"})
        if not isinstance(self.keywords, dict) or not self.keywords:
            raise ValidationError({"keywords": "请至少填写一个关键词"})
        if len(self.keywords) > KEYWORDS_PER_TEMPLATE:
            raise ValidationError({"keywords": f"关键词不能超过 {KEYWORDS_PER_TEMPLATE} 个"})
        known = fields_for(self.kind)
        for name, text in self.keywords.items():
            if not isinstance(name, str) or not KEYWORD.match(name):
                raise ValidationError({"keywords": f"关键词名「{name}」不对：应如 thing1、amount2、keyword1"})
            if not isinstance(text, str) or not text.strip():
                raise ValidationError({"keywords": f"关键词 {name} 的内容不能为空"})
            unknown = placeholders(text) - set(known)
            if unknown:
                raise ValidationError({"keywords": f"关键词 {name} 用了不认识的字段：{', '.join(sorted(unknown))}"})
        unknown = placeholders(self.page) - set(known)
        if unknown:
            raise ValidationError({"page": f"页面用了不认识的字段：{', '.join(sorted(unknown))}"})


def placeholders(text: str) -> set[str]:
    """The {names} a keyword's text uses. Only plain names: a format spec, a conversion, an
    index or an attribute ({amount:d}, {order!r}, {order[0]}) is refused (ValidationError), so
    that filling a saved template can never fail."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValidationError(f"「{text}」的花括号不成对") from exc
    for name, spec, conversion in fields:
        if spec or conversion or not name.isidentifier():
            raise ValidationError(
                f"「{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}」只能写作 {{字段名}}"
            )
    return {name for name, _, _ in fields}


class SubscribeGrant(models.Model):
    """One answer of the member to wx.requestSubscribeMessage for one template, as the mini
    program posted it. Each "accept" lets one message of that template be sent (WeChat's
    one-time subscription), and is used by it; the other answers are kept as said."""

    class Result(models.TextChoices):
        ACCEPT = "accept", "同意"
        REJECT = "reject", "拒绝"
        BAN = "ban", "已被后台封禁"
        FILTER = "filter", "被过滤"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscribe_grants", verbose_name="用户"
    )
    template_id = models.CharField("模板 ID", max_length=128)
    result = models.CharField("结果", max_length=8, choices=Result.choices)
    created_at = models.DateTimeField("时间", default=timezone.now)
    used_at = models.DateTimeField("使用时间", null=True, blank=True)

    class Meta:
        verbose_name = "订阅授权"
        verbose_name_plural = "订阅授权"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["user", "template_id", "created_at"],
                condition=Q(result="accept", used_at__isnull=True),
                name="grant_unused_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.template_id} {self.get_result_display()}"

    @classmethod
    def take(cls, user_id: int, template_id: str) -> SubscribeGrant | None:
        """Use the member's oldest unused accept of this template (in the caller's
        transaction; one message each, however many workers run); None when there is none."""
        with transaction.atomic(savepoint=False):
            grant = (
                cls.objects.select_for_update(skip_locked=True)
                .filter(user_id=user_id, template_id=template_id, result=cls.Result.ACCEPT, used_at__isnull=True)
                .order_by("created_at", "pk")
                .first()
            )
            if grant is not None:
                grant.used_at = timezone.now()
                grant.save(update_fields=["used_at"])
        return grant


# After the first attempt: wait this long before each retry; then the message has failed. A
# message about money is worth little a day late; a shipping record is needed until WeChat takes it.
MESSAGE_RETRIES = [timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
SHIPPING_RETRIES = [*MESSAGE_RETRIES, timedelta(hours=6), timedelta(hours=12), timedelta(hours=24)]


class Message(models.Model):
    """One call to WeChat on a member's behalf: pending until WeChat takes it (sent), or ended
    without it: failed (retries spent, or an error no retry mends: a deleted template, bad data),
    refused (the member said no: no grant, messages blocked, not following) or skipped (never
    tried: messages turned off, no openid, no grant)."""

    class Status(models.TextChoices):
        PENDING = "pending", "待发送"
        SENT = "sent", "已发送"
        FAILED = "failed", "失败"
        REFUSED = "refused", "用户拒收"
        SKIPPED = "skipped", "未发送"

    channel = models.CharField("渠道", max_length=12, choices=Channel.choices)
    kind = models.CharField("消息", max_length=20, choices=[*Kind.choices, ("shipping", "发货信息")])
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wechat_message_log", verbose_name="用户"
    )
    event = models.ForeignKey(
        "outbox.Event", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="事件"
    )
    # The order, charge or refund it is about (what an operator searches by).
    subject = models.CharField("单号", max_length=64, blank=True, db_index=True)
    # A shipping record's payment (the order's admin page shows its upload status).
    order = models.ForeignKey(
        "orders.RechargeOrder",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="shipping_records",
        verbose_name="充值订单",
    )
    openid = models.CharField("接收者 openid", max_length=128, blank=True)
    template_id = models.CharField("模板 ID", max_length=128, blank=True)
    # What is sent (without the access_token, which is added at each attempt).
    body = models.JSONField("内容", default=dict)
    status = models.CharField("状态", max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField("尝试次数", default=0)
    next_attempt_at = models.DateTimeField("下次尝试", default=timezone.now)
    # A runner that took it has it until then (it dies: another takes it after).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_attempt_at = models.DateTimeField("最近尝试", null=True, blank=True)
    last_errcode = models.IntegerField("最近错误码", null=True, blank=True)
    last_error = models.CharField("最近错误", max_length=300, blank=True)
    sent_at = models.DateTimeField("发送时间", null=True, blank=True)
    msgid = models.CharField("微信消息 ID", max_length=32, blank=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "微信消息"
        verbose_name_plural = "微信消息"
        ordering = ["-created_at", "-pk"]
        permissions = [("resend_message", "可以重新发送微信消息")]
        constraints = [
            # An event is told once per channel, however often it is dispatched.
            models.UniqueConstraint(fields=["event", "channel"], name="message_one_per_event_channel"),
            # One shipping record per payment (an operator's resend reuses it).
            models.UniqueConstraint(fields=["order"], condition=Q(channel="shipping"), name="message_one_shipping_per_order"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="message_due_idx", condition=Q(status="pending")),
            models.Index(fields=["channel", "status", "created_at"], name="message_channel_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} {self.get_kind_display()} {self.subject}".strip()

    @property
    def retries(self) -> list[timedelta]:
        return SHIPPING_RETRIES if self.channel == Channel.SHIPPING else MESSAGE_RETRIES

    def resend(self) -> bool:
        """An operator's 重新发送 of a message WeChat did not take (failed or refused): pending
        again, due now, with a fresh schedule. False for any other (sent, still pending, or
        skipped: never made, so there is nothing to send). WeChat still decides: a subscribe
        message the member has no grant for is refused again."""
        resendable = [self.Status.FAILED, self.Status.REFUSED]
        done = (
            type(self)
            .objects.filter(pk=self.pk, status__in=resendable)
            .update(status=self.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_until=None, last_error="")
        )
        self.refresh_from_db()
        return bool(done)


class MessageAttempt(models.Model):
    """One call of a message to WeChat, as it went."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_log", verbose_name="消息")
    attempted_at = models.DateTimeField("时间", default=timezone.now)
    errcode = models.IntegerField("错误码", null=True, blank=True)
    error = models.CharField("说明", max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField("耗时（毫秒）", default=0)

    class Meta:
        verbose_name = "消息发送记录"
        verbose_name_plural = "消息发送记录"
        ordering = ["-attempted_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.errcode}"


@purge_task("WeChat messages")
def purge_messages() -> int:
    """Messages older than WEBHOOK_LOG_RETENTION_DAYS that are no longer pending go, with their
    attempts; a shipping record stays (the order's upload status)."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_LOG_RETENTION_DAYS)
    old = Message.objects.filter(created_at__lt=cutoff).exclude(status=Message.Status.PENDING).exclude(channel=Channel.SHIPPING)
    deleted, _ = old.delete()
    return deleted

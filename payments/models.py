"""The notification log (every notify WeChat Pay posts, kept before anything else happens)
and incidents (what an operator must look at)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from common.statements import Statement

logger = logging.getLogger(__name__)

# A notify whose signature did not verify keeps only this much of its body: anyone can post one.
UNVERIFIED_BODY_BYTES = 1024


class Incident(models.Model):
    """Something WeChat reported that the books could not simply apply: for an operator."""

    class Kind(models.TextChoices):
        AMOUNT_MISMATCH = "amount_mismatch", "金额不符"
        UNKNOWN_ORDER = "unknown_order", "未知订单的支付通知"
        PAID_AFTER_CLOSE = "paid_after_close", "关闭后仍收到付款"
        OTHER_TRANSACTION = "other_transaction", "同一订单出现另一笔微信支付"
        UNKNOWN_REFUND = "unknown_refund", "未知退款的通知"
        REFUND_CONFLICT = "refund_conflict", "退款结果与本地记录不符"
        REFUND_ABNORMAL = "refund_abnormal", "退款异常（CHANGE）"
        # Found by reconciliation (reconciliation/services.py): WeChat's trade bill against the books.
        BILL_UNKNOWN_ORDER = "bill_unknown_order", "对账：未知订单"
        BILL_MISSING_PAYMENT = "bill_missing_payment", "对账：微信无此支付"
        BILL_AMOUNT = "bill_amount", "对账：金额不符"
        BILL_MERCHANT = "bill_merchant", "对账：商户号或appid不符"
        BILL_TRANSACTION = "bill_transaction", "对账：微信订单号不符"
        BILL_UNKNOWN_REFUND = "bill_unknown_refund", "对账：未知退款"
        BILL_MISSING_REFUND = "bill_missing_refund", "对账：微信无此退款"
        BILL_REFUND_AMOUNT = "bill_refund_amount", "对账：退款金额不符"
        BILL_REFUND_STATE = "bill_refund_state", "对账：退款状态不符"
        BILL_DUPLICATE = "bill_duplicate", "对账：账单重复行"

    kind = models.CharField("类型", max_length=20, choices=Kind.choices)
    order = models.ForeignKey(
        "orders.RechargeOrder", on_delete=models.PROTECT, null=True, blank=True, related_name="incidents", verbose_name="订单"
    )
    refund = models.ForeignKey(
        "orders.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="incidents", verbose_name="退款"
    )
    out_trade_no = models.CharField("商户订单号", max_length=64, blank=True, db_index=True)
    message = models.TextField("说明")
    # One open incident per kind and subject: WeChat's retries add notifications to it, not copies.
    key = models.CharField(max_length=200, editable=False)
    occurrences = models.PositiveIntegerField("出现次数", default=1)
    created_at = models.DateTimeField("发现时间", default=timezone.now)
    last_seen_at = models.DateTimeField("最近出现", default=timezone.now)
    resolved_at = models.DateTimeField("处理时间", null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="处理人"
    )
    resolution = models.CharField("处理说明", max_length=200, blank=True)

    class Meta:
        verbose_name = "异常"
        verbose_name_plural = "异常"
        ordering = ["-last_seen_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(resolved_at__isnull=True), name="incident_one_open_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.out_trade_no}".strip()

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @classmethod
    def report(cls, kind: str, message: str, *, order=None, refund=None, out_trade_no: str = "") -> Incident:
        """Open an incident, or count one more occurrence of the same open one."""
        out_trade_no = out_trade_no or (order.out_trade_no if order else "")
        key = f"{kind}:{out_trade_no}:{refund.out_refund_no if refund else ''}"
        logger.error("INCIDENT %s %s: %s", kind, out_trade_no, message)
        for _ in range(2):
            updated = cls.objects.filter(key=key, resolved_at__isnull=True).update(
                occurrences=models.F("occurrences") + 1, last_seen_at=timezone.now(), message=message
            )
            if updated:
                return cls.objects.get(key=key, resolved_at__isnull=True)
            try:
                with transaction.atomic():
                    return cls.objects.create(
                        kind=kind, message=message, order=order, refund=refund, out_trade_no=out_trade_no, key=key
                    )
            except IntegrityError:
                continue  # opened by someone else at the same moment: count ours on it
        return cls.objects.get(key=key, resolved_at__isnull=True)

    def resolve(self, by, note: str = "") -> bool:
        """Mark it handled; False if it already was."""
        done = (
            type(self)
            .objects.filter(pk=self.pk, resolved_at__isnull=True)
            .update(resolved_at=timezone.now(), resolved_by=by, resolution=note[:200])
        )
        return bool(done)


class Notification(models.Model):
    """One notify as received: kept first, then processed (dj-stripe's WebhookEventTrigger)."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "支付通知"
        REFUND = "refund", "退款通知"

    class Outcome(models.TextChoices):
        RECEIVED = "received", "已接收"
        APPLIED = "applied", "已入账"
        DUPLICATE = "duplicate", "重复（已处理过）"
        IGNORED = "ignored", "无需处理"
        REJECTED = "rejected", "已拒绝"
        INCIDENT = "incident", "异常（需人工处理）"
        ERROR = "error", "处理失败"

    kind = models.CharField("类型", max_length=8, choices=Kind.choices)
    # The provider whose notify URL it came to: its `api` (v2, v3) or registry name.
    api = models.CharField("接口版本", max_length=32, default="v2")
    # v3: the Wechatpay-* headers the signature is checked with (and Request-ID), as received.
    headers = models.JSONField("签名头", default=dict, blank=True)
    # The bytes as received, whatever they are (a NUL byte or UTF-16 fits in bytea, not in text).
    raw_body = models.BinaryField("原文")
    remote_addr = models.GenericIPAddressField("来源地址", null=True, blank=True)
    received_at = models.DateTimeField("接收时间", default=timezone.now, db_index=True)
    signature_valid = models.BooleanField("签名有效", null=True)
    out_trade_no = models.CharField("商户订单号", max_length=64, blank=True, db_index=True)
    out_refund_no = models.CharField("商户退款单号", max_length=64, blank=True, db_index=True)
    outcome = models.CharField("处理结果", max_length=10, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.TextField("说明", blank=True)
    traceback = models.TextField("错误堆栈", blank=True)
    incident = models.ForeignKey(
        Incident, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifications", verbose_name="异常"
    )
    processed_at = models.DateTimeField("处理时间", null=True, blank=True)

    class Meta:
        verbose_name = "通知日志"
        verbose_name_plural = "通知日志"
        ordering = ["-received_at", "-pk"]
        indexes = [models.Index(fields=["outcome", "received_at"], name="notification_outcome_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.out_trade_no or '-'} {self.get_outcome_display()}"

    @property
    def body(self) -> bytes:
        return bytes(self.raw_body)

    @property
    def body_text(self) -> str:
        """The body for people: UTF-8 where it is, with anything else shown as escapes."""
        return self.body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")

    @classmethod
    def record(
        cls, kind: str, body: bytes, remote_addr: str | None, api: str = "v2", headers: dict[str, str] | None = None
    ) -> Notification:
        """Keep a notify before anything else is done with it (may raise DatabaseError)."""
        # Every notify, valid or not, comes here: one compiled INSERT (common/statements.py),
        # and the instance made as a row read back is (no defaults to work out).
        row: dict[str, Any] = {
            "kind": kind,
            "api": api,
            "headers": headers or {},
            "raw_body": body,
            "remote_addr": remote_addr,
            "received_at": timezone.now(),
        }
        row["id"] = _RECORD.run(**row)
        row.update(_RECEIVED, incident_id=None, processed_at=None)
        return cls.from_db(router.db_for_write(cls), _COLUMNS, [row[name] for name in _COLUMNS])

    def names(self, out_trade_no: str, out_refund_no: str = "") -> None:
        """The order (and refund) a verified notify is about, as soon as it is read: written
        with the outcome, whatever it is (an error's included), so that the log is found by them."""
        self.out_trade_no, self.out_refund_no = out_trade_no[:64], out_refund_no[:64]

    def finish(self, outcome: str, detail: str = "", **fields) -> None:
        """Record what processing did (inside the caller's transaction when money moved with it),
        and the order and refund it `names`: one UPDATE, the hot path has no other.

        A notify whose signature did not verify keeps only a prefix of its body.
        """
        fields = {
            "out_trade_no": self.out_trade_no,
            "out_refund_no": self.out_refund_no,
            **fields,
            "outcome": outcome,
            "detail": detail[:2000],
            "processed_at": timezone.now(),
        }
        if outcome == self.Outcome.REJECTED and fields.get("signature_valid", self.signature_valid) is not True:
            fields["raw_body"] = self.body[:UNVERIFIED_BODY_BYTES]
        statement = _FINISH.get(key := tuple(fields))
        if statement is None:
            statement = _FINISH[key] = Statement.update_by_pk(type(self), key)
        statement.run(pk=self.pk, **fields)
        for name, value in fields.items():
            setattr(self, name, value)


# A notify's row as received: what it came with, and the rest as it is until processed
# (constants of the INSERT).
_RECEIVED = {
    "signature_valid": None,
    "out_trade_no": "",
    "out_refund_no": "",
    "outcome": Notification.Outcome.RECEIVED.value,
    "detail": "",
    "traceback": "",
}
_RECORD = Statement.insert(
    Notification, ["kind", "api", "headers", "raw_body", "remote_addr", "received_at"], constants=_RECEIVED
)
_COLUMNS = [field.attname for field in Notification._meta.concrete_fields]
# Notification.finish's UPDATEs, one per set of fields written (a handful of shapes in all).
_FINISH: dict[tuple[str, ...], Statement] = {}

# A member's refund requests (the models live in their own module).
from payments.refund_requests import RefundRequest, RefundRequestLine  # noqa: E402, F401

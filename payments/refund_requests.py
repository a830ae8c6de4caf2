"""A member's refund request (申请退款, docs/stored-value.md#a-members-refund-request): what
is refundable of each recharge, asked for with a reason, approved or declined by an operator
(or approved by itself when every recharge in it is recent and untouched), and refunded
recharge by recharge through the existing refund machinery.

Lock order: the request, then (each recharge's) order, refund and user, as everywhere.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from common.money import format_fen
from common.numbering import stamped_number
from orders.models import Lot, RechargeOrder, Refund, RefundRefused

logger = logging.getLogger(__name__)


class RequestRefused(Exception):
    """A request that cannot be made or decided; the message is for the person (Chinese)."""


@dataclass(frozen=True)
class Refundable:
    """One recharge's refundable part now: its unspent paid money, and the bonus that goes with it."""

    order: RechargeOrder
    paid: int
    bonus: int
    consumed: int
    amount: int  # paid money refundable
    bonus_removed: int
    manual: bool  # past WeChat's refund window: paid by hand

    @property
    def untouched(self) -> bool:
        return self.consumed == 0

    @classmethod
    def of_user(cls, user_id: int) -> list[Refundable]:
        """The user's recharges with paid money left, oldest first."""
        failed = [Refund.Status.CLOSED, Refund.Status.FAILED]
        # What WeChat still holds of each order (its amount less every refund that has not
        # failed, as RechargeOrder.refund_totals counts it), in the same query.
        committed = Coalesce(Sum("order__refunds__amount", filter=~Q(order__refunds__status__in=failed)), 0)
        lots = (
            Lot.objects.filter(user_id=user_id, order__isnull=False, paid_left__gt=0)
            .select_related("order")
            .annotate(committed=committed)
            .order_by("pk")
        )
        found = []
        for lot in lots:
            order = lot.order
            assert order is not None
            left = min(lot.paid_left, order.amount - lot.committed)
            if left > 0:
                found.append(cls(order, lot.paid, lot.bonus, lot.consumed, left, lot.bonus_left, order.past_refund_window))
        return found


class RefundRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "待审核"
        APPROVED = "approved", "已同意"
        DECLINED = "declined", "已拒绝"

    number = models.CharField("申请单号", max_length=32, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="refund_requests", verbose_name="用户"
    )
    reason = models.CharField("退款原因", max_length=200)
    amount = models.PositiveBigIntegerField("申请时可退（分）", editable=False)
    bonus = models.PositiveBigIntegerField("申请时将扣回赠送（分）", editable=False)
    status = models.CharField("状态", max_length=10, choices=Status.choices, default=Status.PENDING, editable=False)
    auto_approved = models.BooleanField("自动同意", default=False, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="处理人",
        editable=False,
    )
    decided_at = models.DateTimeField("处理时间", null=True, blank=True, editable=False)
    note = models.CharField("处理说明", max_length=200, blank=True, editable=False)
    created_at = models.DateTimeField("申请时间", default=timezone.now, editable=False)

    class Meta:
        verbose_name = "退款申请"
        verbose_name_plural = "退款申请"
        ordering = ["-created_at", "-pk"]
        permissions = [("decide_refundrequest", "可审核退款申请（同意或拒绝）")]
        indexes = [models.Index(fields=["status", "created_at"], name="refundrequest_status_idx")]
        constraints = [
            # One request waiting at a time per member: a second submission is the same request.
            models.UniqueConstraint(fields=["user"], condition=Q(status="pending"), name="refundrequest_one_pending_per_user"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    @property
    def bonus_yuan(self) -> str:
        return format_fen(self.bonus)

    # -- making one ---------------------------------------------------------------------------
    @classmethod
    def submit(cls, user: User, reason: str, now: datetime | None = None) -> RefundRequest:
        """The member asks for every recharge's refundable part back, with a reason. Approved at
        once when each recharge in it is within REFUND_SELF_SERVICE_DAYS and untouched. Raises
        RequestRefused: no reason, nothing refundable, a request already waiting."""
        reason = reason.strip()
        if not reason:
            raise RequestRefused("请填写退款原因")
        if len(reason) > 200:
            raise RequestRefused("退款原因最多 200 字")
        now = now or timezone.now()
        try:
            with transaction.atomic():
                User.locked_balance(user.pk)  # what is refundable holds still while it is written down
                if cls.objects.filter(user=user, status=cls.Status.PENDING).exists():
                    raise RequestRefused("您已有一笔待审核的退款申请，请等待处理")
                parts = Refundable.of_user(user.pk)
                if not parts:
                    raise RequestRefused("没有可退款的充值：已消费的金额和赠送金额不能退款")
                request = cls.objects.create(
                    number=stamped_number("RR", 10, now),
                    user=user,
                    reason=reason,
                    amount=sum(p.amount for p in parts),
                    bonus=sum(p.bonus_removed for p in parts),
                    created_at=now,
                )
                RefundRequestLine.objects.bulk_create(
                    RefundRequestLine(request=request, order=p.order, amount=p.amount, bonus=p.bonus_removed, manual=p.manual)
                    for p in parts
                )
        except IntegrityError:
            raise RequestRefused("您已有一笔待审核的退款申请，请等待处理") from None
        window = timedelta(days=settings.REFUND_SELF_SERVICE_DAYS)
        recent = all(p.untouched and not p.manual and p.order.paid_at and p.order.paid_at > now - window for p in parts)
        if recent and settings.REFUND_SELF_SERVICE_DAYS > 0:
            try:
                request.approve(None, f"{settings.REFUND_SELF_SERVICE_DAYS} 天内未使用的充值，自动同意", auto=True)
            except RequestRefused:
                pass  # spent meanwhile: it waits for an operator, like any other
        return request

    # -- deciding ---------------------------------------------------------------------------------
    def approve(self, operator, note: str = "", auto: bool = False) -> list[Refund]:
        """Refund each recharge's refundable part now (at most what was asked), each through its
        own order, in one transaction: the refunds, 处理中 (or 待线下退款 past WeChat's window),
        for `payments.services.approve_refund_request` to send to WeChat after it. Raises
        RequestRefused when it was decided already, or nothing is left."""
        with transaction.atomic():
            request = type(self).objects.select_for_update().get(pk=self.pk)
            if request.status != self.Status.PENDING:
                raise RequestRefused(f"该申请已处理（{request.get_status_display()}）")
            # Every order of the request, locked before any user lock is taken (start_refund
            # locks the order, then the user): order, then user, as everywhere.
            order_ids = list(request.lines.values_list("order_id", flat=True))
            list(RechargeOrder.objects.select_for_update().filter(pk__in=order_ids).order_by("pk").values_list("pk"))
            refunds = []
            for line in request.lines.select_related("order").order_by("pk"):
                try:
                    # What is unspent now (read under the order's and the user's locks), at most what was asked.
                    refund = line.order.start_refund(
                        line.amount,
                        f"退款申请 {request.number}：{request.reason}"[:200],
                        operator,
                        Refund.new_out_refund_no(),
                        up_to=True,
                    )
                except RefundRefused as exc:
                    line.note = str(exc)[:200]
                    line.save(update_fields=["note"])
                    continue
                line.refund = refund
                line.save(update_fields=["refund"])
                refunds.append(refund)
            if not refunds:
                raise RequestRefused("用户已消费了申请中的全部金额，没有可退的金额，请拒绝该申请并说明")
            request.status, request.decided_by, request.decided_at = self.Status.APPROVED, operator, timezone.now()
            request.note, request.auto_approved = note.strip()[:200], auto
            request.save(update_fields=["status", "decided_by", "decided_at", "note", "auto_approved"])
        self.status, self.decided_by, self.decided_at, self.note = request.status, operator, request.decided_at, request.note
        self.auto_approved = auto
        logger.info("refund request %s approved (%s refunds)", request.number, len(refunds))
        return refunds

    def refunds(self) -> list[Refund]:
        """The refunds its approval made, in the order of its lines."""
        return [line.refund for line in self.lines.select_related("refund__order").order_by("pk") if line.refund is not None]

    def decline(self, operator, note: str) -> None:
        """Decline with a note for the member (required). Raises RequestRefused when it was decided already."""
        note = note.strip()
        if not note:
            raise RequestRefused("拒绝时请填写说明，用户会看到")
        with transaction.atomic():
            request = type(self).objects.select_for_update().get(pk=self.pk)
            if request.status != self.Status.PENDING:
                raise RequestRefused(f"该申请已处理（{request.get_status_display()}）")
            request.status, request.decided_by, request.decided_at, request.note = (
                self.Status.DECLINED,
                operator,
                timezone.now(),
                note[:200],
            )
            request.save(update_fields=["status", "decided_by", "decided_at", "note"])
        self.status, self.decided_by, self.decided_at, self.note = request.status, operator, request.decided_at, request.note


class RefundRequestLine(models.Model):
    """One recharge of a request: what was refundable of it when asked, and its refund once approved."""

    request = models.ForeignKey(RefundRequest, on_delete=models.CASCADE, related_name="lines", verbose_name="退款申请")
    order = models.ForeignKey(RechargeOrder, on_delete=models.PROTECT, related_name="+", verbose_name="充值订单")
    amount = models.PositiveBigIntegerField("申请时可退（分）")
    bonus = models.PositiveBigIntegerField("将扣回赠送（分）")
    manual = models.BooleanField("超过一年，线下退款", default=False)
    refund = models.OneToOneField(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="request_line", verbose_name="退款"
    )
    note = models.CharField("说明", max_length=200, blank=True)

    class Meta:
        verbose_name = "退款申请明细"
        verbose_name_plural = "退款申请明细"
        constraints = [models.UniqueConstraint(fields=["request", "order"], name="refundrequestline_one_per_order")]

    def __str__(self) -> str:
        return str(self.order)

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

"""Recharge orders, their refunds and the balance ledger. Money is integer fen.

Every change of state is a method of the model it changes, run inside
`transaction.atomic()` on rows it locks itself (`select_for_update()`), checking its own
guard; callers never set a status. Lock order, everywhere: order, then refund, then user.
The database backs every "exactly once" (unique constraints), so several app servers and
several `sweep_orders` runners can work at the same time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import models, router, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import User
from common.money import format_fen
from common.numbering import beijing_stamp, random_digits, stamped_number
from common.statements import Statement
from orders.allocation import LotState, Share, bonus_share, consume, give_back
from outbox.models import emit
from wxproto.beijing import BEIJING, beijing_iso, beijing_text


class Outcome(StrEnum):
    """What a locked verb did: applied the change, found it applied already, or found the
    record ended another way (a conflict, for an incident; nothing changed)."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


APPLIED, DUPLICATE, CONFLICT = Outcome.APPLIED, Outcome.DUPLICATE, Outcome.CONFLICT
logger = logging.getLogger(__name__)


class UnknownOrder(Exception):
    pass


class AmountMismatch(Exception):
    """WeChat took another amount than the order's: nothing applied. `incident` is the one the
    flow opened for it (payments.services.apply_payment)."""

    incident: object = None  # payments.models.Incident (orders knows nothing of incidents)


class InsufficientBalance(Exception):
    def __init__(self, balance: int):
        super().__init__(f"balance {balance} fen is not enough")
        self.balance = balance


class RefundRefused(Exception):
    """A refund that must not start; the message is for the operator (Chinese)."""


@dataclass
class Payment:
    """What `RechargeOrder.pay` did: APPLIED or DUPLICATE, and whether it came after a local close."""

    outcome: Outcome
    order_id: int
    after_close: bool = False
    other_transaction_id: str = ""

    @property
    def order(self) -> RechargeOrder:
        """The order, read when needed (the hot path does not build it)."""
        return RechargeOrder.objects.get(pk=self.order_id)


class RechargeOrder(models.Model):
    class Status(models.IntegerChoices):
        PENDING = 0, "待支付"
        PAID = 1, "已支付"
        CLOSED = 2, "已关闭"
        REFUNDED = 3, "已退款"

    class Channel(models.TextChoices):
        JSAPI = "jsapi", "公众号"
        MINIPROGRAM = "miniprogram", "小程序"

    class TradeType(models.TextChoices):
        """How the order is paid (WeChat's trade_type): in WeChat (公众号 or mini program), by
        scanning a QR code (Native), or in a phone's browser (H5)."""

        JSAPI = "JSAPI", "微信内支付"
        NATIVE = "NATIVE", "扫码支付"
        MWEB = "MWEB", "H5 支付"

    class CloseReason(models.TextChoices):
        # WeChat answered the unified order with a refusal: it never had this order to pay.
        REFUSED = "refused", "微信拒绝下单"

    SCENE_CODES: dict[str, str] = {Channel.JSAPI: "10", Channel.MINIPROGRAM: "20"}
    # WeChat accepts at most 50 refunds of one order, within a year of its payment.
    MAX_REFUNDS = 50
    REFUND_WINDOW = timedelta(days=365)
    # A pending order is paid again (same prepay_id) or reused for the same amount only while
    # it has this long left: enough for the user to finish in WeChat's pay sheet.
    REUSE_MARGIN = timedelta(minutes=2)

    out_trade_no = models.CharField("商户订单号", max_length=32, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recharge_orders", verbose_name="用户"
    )
    amount = models.PositiveBigIntegerField("金额（分）", editable=False)
    status = models.PositiveSmallIntegerField("状态", choices=Status.choices, default=Status.PENDING, editable=False)
    channel = models.CharField("渠道", max_length=16, choices=Channel.choices, editable=False)
    openid = models.CharField("下单 openid", max_length=128, editable=False)
    prepay_id = models.CharField("预支付会话标识 prepay_id", max_length=64, blank=True, editable=False)
    prepay_expires_at = models.DateTimeField("预支付会话有效期", null=True, blank=True, editable=False)
    trade_type = models.CharField("支付方式", max_length=8, choices=TradeType.choices, default=TradeType.JSAPI, editable=False)
    # Native: the code_url to draw as a QR code; H5: the h5_url (mweb_url) to send the browser to.
    pay_url = models.CharField("支付链接", max_length=512, blank=True, editable=False)
    pay_url_expires_at = models.DateTimeField("支付链接有效期", null=True, blank=True, editable=False)
    expires_at = models.DateTimeField("支付截止（time_expire）", editable=False)
    transaction_id = models.CharField("微信支付单号", max_length=32, unique=True, null=True, blank=True, editable=False)
    paid_at = models.DateTimeField("支付时间", null=True, blank=True, editable=False)
    refunded_amount = models.PositiveBigIntegerField("已退款（分）", default=0, editable=False)
    # What the order promised when it was placed (an operator editing the package later changes
    # nothing here): the package bought, if any, the bonus it comes with, how long that bonus
    # lasts (days; none: it never expires) and the package's limit per user at the time.
    package = models.ForeignKey(
        "offers.Package",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="orders",
        verbose_name="套餐",
        editable=False,
    )
    bonus = models.PositiveBigIntegerField("承诺赠送（分）", default=0, editable=False)
    bonus_valid_days = models.PositiveSmallIntegerField("赠送有效期（天）", null=True, blank=True, editable=False)
    package_limit = models.PositiveSmallIntegerField("套餐每人限购", null=True, blank=True, editable=False)
    # When WeChat was last asked about this order: pollers and reconcilers claim it by
    # moving this forward (compare-and-set), so one order is queried by one of them at a time.
    synced_at = models.DateTimeField("上次向微信查询", null=True, blank=True, editable=False)
    # Why a closed order was closed, when it is worth telling the user: WeChat refused to place it.
    close_reason = models.CharField("关闭原因", max_length=16, choices=CloseReason.choices, blank=True, editable=False)
    prepay_error = models.CharField("下单失败代码", max_length=64, blank=True, editable=False)
    # WeChat said this order was paid (a notify or query with another amount, a query without
    # a usable transaction, ORDERPAID) while it could not be credited: the user has paid, and
    # must be told so rather than offered to pay again, until an operator settles it.
    paid_reported_at = models.DateTimeField("微信报告已支付（未入账）", null=True, blank=True, editable=False)
    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "充值订单"
        verbose_name_plural = "充值订单"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "status", "channel", "amount"], name="order_reuse_idx"),
            models.Index(fields=["status", "created_at"], name="order_status_created_idx"),
            # A user's history, newest first, a page at a time (keyset on created_at, id).
            models.Index(fields=["user", "-created_at", "-id"], name="order_user_history_idx"),
            # The admin's list, newest first, and its search by openid.
            models.Index(fields=["-created_at", "-id"], name="order_created_idx"),
            models.Index(fields=["openid"], name="order_openid_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="order_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(refunded_amount__lte=models.F("amount")), name="order_refund_within_amount"
            ),
        ]
        permissions = [
            ("sync_rechargeorder", "可向微信查询并同步、关闭订单"),
            ("refund_rechargeorder", "可发起退款"),
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @classmethod
    def new_out_trade_no(cls, channel: str, now: datetime | None = None) -> str:
        """Beijing timestamp + scene code + random digits: 14 + 2 + 10 = 26 characters."""
        return beijing_stamp(now) + cls.SCENE_CODES[channel] + random_digits(10)

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    @property
    def refunded_yuan(self) -> str:
        return format_fen(self.refunded_amount)

    @property
    def is_credited(self) -> bool:
        """Paid at some point (so credited): paid, or refunded afterwards."""
        return self.transaction_id is not None

    @property
    def is_refused(self) -> bool:
        """Closed because WeChat refused to place it: nothing was or can be paid."""
        return self.status == self.Status.CLOSED and self.close_reason == self.CloseReason.REFUSED

    @property
    def is_confirming(self) -> bool:
        """WeChat reported it paid but it is not credited (yet): never to be offered for payment again."""
        return self.paid_reported_at is not None and not self.is_credited

    @property
    def status_text(self) -> str:
        """The status in words for people: 部分退款 when only part was refunded; 支付确认中
        when WeChat took the money but it is not credited; 下单失败，未扣款 when WeChat refused it."""
        if self.status == self.Status.REFUNDED and self.refunded_amount < self.amount:
            return "部分退款"
        if self.is_confirming:
            return "支付确认中"
        if self.is_refused:
            return "下单失败，未扣款"
        return self.get_status_display()

    def prepay_is_valid(self, now: datetime | None = None) -> bool:
        return bool(self.prepay_id and self.prepay_expires_at and self.prepay_expires_at > (now or timezone.now()))

    def to_dict(self) -> dict:
        """The one JSON shape of an order (the JSON API: status polls, the mini program's list).
        `confirming`: WeChat took the money and it is not credited yet (支付已收到，正在确认)."""
        return {
            "out_trade_no": self.out_trade_no,
            "amount_fen": self.amount,
            "status": self.status_name,
            "confirming": self.is_confirming,
            "channel": self.channel,
            "refunded_fen": self.refunded_amount,
            "created_at": self.created_at.isoformat(),
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
        }

    @property
    def status_name(self) -> str:
        """The status's name in JSON answers: pending, paid, closed, refunded."""
        return self.Status(self.status).name.lower()

    def pay_url_is_valid(self, now: datetime | None = None) -> bool:
        return bool(self.pay_url and self.pay_url_expires_at and self.pay_url_expires_at > (now or timezone.now()))

    @property
    def is_resumable(self) -> bool:
        """继续支付 is offered: a pending 公众号 order that WeChat has not reported paid and that
        can still be paid for a while: its prepay_id (JSAPI) is valid; a Native or H5 order
        while the order itself is (a fresh code_url or h5_url is asked for)."""
        if self.status != self.Status.PENDING or self.channel != self.Channel.JSAPI or self.is_confirming:
            return False
        soon = timezone.now() + self.REUSE_MARGIN
        if self.trade_type == self.TradeType.JSAPI:
            return self.prepay_is_valid(soon)
        # Native and H5: a lapsed code_url or h5_url is asked for again (payments.services.resume).
        return self.expires_at > soon

    @property
    def pays_by_qrcode(self) -> bool:
        return self.trade_type == self.TradeType.NATIVE

    def _locked(self) -> RechargeOrder:
        return type(self).objects.select_for_update().get(pk=self.pk)

    # -- transitions -------------------------------------------------------------------
    @classmethod
    def numbered(cls, out_trade_no: str) -> RechargeOrder:
        """A handle on the order with this number, for its verbs, read from nothing: `pay`
        finds the row by its number (unique) and locks it; a notify builds nothing more."""
        return cls.from_db(router.db_for_write(cls), ["out_trade_no"], [out_trade_no])

    def pay(self, transaction_id: str, total_fee: int, paid_at: datetime) -> Payment:
        """WeChat took `total_fee` for this order: mark it paid and credit the user, once.

        Pending or closed (WeChat took the money anyway: credited, and `after_close` says
        so for an incident) -> paid. A settled order is a DUPLICATE and changes nothing.
        Raises UnknownOrder, or AmountMismatch with nothing applied. Joins the caller's
        transaction when there is one (no savepoint: a failure fails the whole of it).
        The row is found by `out_trade_no`, so a `numbered` handle is enough.
        """
        # Every notify comes through here: compiled statements (common/statements.py).
        with transaction.atomic(savepoint=False):
            row = _LOCK_FOR_PAYMENT.one(out_trade_no=self.out_trade_no)
            if row is None:
                raise UnknownOrder(self.out_trade_no)
            self.pk, user_id, amount, status, paid_as, bonus, bonus_days, package_id, limit = row
            if paid_as is not None:
                return Payment(DUPLICATE, self.pk, other_transaction_id=paid_as if paid_as != transaction_id else "")
            if total_fee != amount:
                raise AmountMismatch(f"微信支付报告金额 {format_fen(total_fee)} 元，订单金额 {format_fen(amount)} 元")
            now = timezone.now()
            _MARK_PAID.run(pk=self.pk, status=self.Status.PAID, transaction_id=transaction_id, paid_at=paid_at, updated_at=now)
            if bonus and limit is not None:
                # A package limited per user is counted under the user's lock: two of its
                # orders paid at once give its bonus once; the other is paid money only.
                User.locked_balance(user_id)
                if Lot.bonuses_of_package(user_id, package_id) >= limit:
                    bonus = 0
            expires = bonus_expiry(paid_at, bonus_days) if bonus and bonus_days is not None else None
            lot = OpenLot(order_id=self.pk, bonus=bonus, bonus_expires_at=expires)
            entry = LedgerEntry.post(user_id, amount, LedgerEntry.Kind.RECHARGE, order_id=self.pk, lots=lot)
            if bonus:
                entry = LedgerEntry.post(
                    user_id,
                    bonus,
                    LedgerEntry.Kind.BONUS,
                    order_id=self.pk,
                    lots=ToLot(lot.id, 0, bonus),
                    reason=bonus_note(expires),
                )
            emit(
                "recharge.succeeded",
                {
                    "order": self.out_trade_no,
                    "member_id": user_id,
                    "amount": amount,
                    "bonus": bonus,
                    "balance": entry.balance_after,
                    "paid_at": beijing_iso(paid_at),
                },
            )
        self.status, self.transaction_id, self.paid_at, self.updated_at = self.Status.PAID, transaction_id, paid_at, now
        return Payment(APPLIED, self.pk, after_close=status == self.Status.CLOSED)

    def pay_as_taken(self, transaction_id: str, total_fee: int, paid_at: datetime, *, with_bonus: bool) -> Payment:
        """An operator settles an amount mismatch: WeChat took `total_fee` for this order, not
        its amount. The order's amount becomes what WeChat took (what WeChat holds for it, and
        what its refunds are checked against), then it is paid as any other (`pay`), in one
        transaction under the order's lock.

        The promised bonus comes only `with_bonus` and when WeChat took at least the order's
        amount (docs/operations.md#异常). A credited order is a DUPLICATE, nothing changed.
        """
        with transaction.atomic():
            order = self._locked()
            if order.transaction_id is not None:
                return Payment(DUPLICATE, order.pk)
            fields: dict[str, int] = {"amount": total_fee}
            if not with_bonus or total_fee < order.amount:
                fields["bonus"] = 0
            type(self).objects.filter(pk=order.pk).update(**fields)
            self.out_trade_no = order.out_trade_no
            payment = self.pay(transaction_id, total_fee, paid_at)
        self.amount = total_fee
        return payment

    def close(self) -> bool:
        """Pending -> closed (WeChat says it can no longer be paid). False if it was not pending."""
        with transaction.atomic():
            order = self._locked()
            if order.status != self.Status.PENDING:
                return False
            order.status = self.Status.CLOSED
            order.save(update_fields=["status", "updated_at"])
        self.status = order.status
        return True

    def refuse(self, code: str) -> bool:
        """Pending -> closed as 下单失败: WeChat answered the unified order with a refusal (`code`).

        Only an order that never got a prepay_id and that WeChat never reported paid: one
        placed meanwhile by a concurrent request for the same order stays as it is.
        False if it was not refused.
        """
        with transaction.atomic():
            order = self._locked()
            if order.status != self.Status.PENDING or order.prepay_id or order.paid_reported_at:
                return False
            order.status = self.Status.CLOSED
            order.close_reason = self.CloseReason.REFUSED
            order.prepay_error = code[:64]
            order.save(update_fields=["status", "close_reason", "prepay_error", "updated_at"])
        self.status, self.close_reason, self.prepay_error = order.status, order.close_reason, order.prepay_error
        return True

    def note_paid_report(self) -> bool:
        """WeChat said this order is paid, but it could not be credited: remember it (once),
        so that the pages say the payment is being confirmed and nobody asks to pay again.
        False if it was already known, or the order is credited."""
        with transaction.atomic():
            order = self._locked()
            if order.paid_reported_at is not None or order.is_credited:
                return False
            order.paid_reported_at = timezone.now()
            order.save(update_fields=["paid_reported_at", "updated_at"])
        self.paid_reported_at = order.paid_reported_at
        return True

    def claim_sync(self, min_interval: timedelta) -> bool:
        """Claim the right to ask WeChat about this pending order now (at most once per interval)."""
        now = timezone.now()
        claimed = (
            type(self)
            .objects.filter(pk=self.pk, status=self.Status.PENDING)
            .filter(Q(synced_at__isnull=True) | Q(synced_at__lte=now - min_interval))
            .update(synced_at=now)
        )
        return claimed == 1

    def refund_totals(self) -> tuple[int, int]:
        """(number of refunds, fen committed to refunds that have not failed)."""
        totals = self.refunds.aggregate(
            count=Count("pk"),
            committed=Sum("amount", filter=~Q(status__in=[Refund.Status.CLOSED, Refund.Status.FAILED])),
        )
        return totals["count"], totals["committed"] or 0

    def refundable_amount(self) -> int:
        """What a refund may return now: the paid money left in the order's lot (never what was
        spent), within what WeChat still holds of the order (its amount less every refund that
        has not failed)."""
        if not self.is_credited:
            return 0
        lot = Lot.objects.filter(order=self).values_list("paid_left", flat=True).first()
        return min(self.amount - self.refund_totals()[1], lot or 0)

    def refund_terms(self) -> RefundTerms | None:
        """How a refund of this recharge is computed (for the refund pages); None before it is credited."""
        lot = Lot.objects.filter(order=self).first()
        if lot is None:
            return None
        return RefundTerms.of(lot)

    @property
    def past_refund_window(self) -> bool:
        """Paid longer ago than WeChat takes refunds for: a refund is paid by hand instead."""
        return self.paid_at is not None and self.paid_at <= timezone.now() - self.REFUND_WINDOW

    def start_refund(
        self, amount: int, reason: str, requested_by=None, out_refund_no: str = "", *, up_to: bool = False
    ) -> Refund:
        """Start a refund of `amount` fen: a Refund row (处理中), the paid money taken from the
        order's lot and, in the same transaction, the same share of the lot's bonus removed
        (docs/stored-value.md#refunds).

        The debit comes first, so the money cannot be spent while WeChat refunds it; a
        refund that WeChat refuses or closes gives both back (`Refund.settle`). The form's
        pre-made `out_refund_no` makes a double submission one refund. With `up_to`, `amount`
        is a ceiling: what is unspent when the locks are held is refunded, at most that (a
        member's request). Raises RefundRefused with the reason for the operator.
        """
        reason = reason.strip()
        if amount <= 0:
            raise RefundRefused("退款金额必须大于 0")
        if not reason:
            raise RefundRefused("请填写退款原因")
        out_refund_no = out_refund_no or Refund.new_out_refund_no()
        with transaction.atomic():
            order = self._locked()
            if order.status not in (self.Status.PAID, self.Status.REFUNDED):
                raise RefundRefused(f"订单{order.get_status_display()}，只有已支付的订单可以退款")
            if Refund.objects.filter(out_refund_no=out_refund_no).exists():
                raise RefundRefused("该退款申请已提交，请勿重复提交")
            count, committed = order.refund_totals()
            if count >= self.MAX_REFUNDS:
                raise RefundRefused(f"每笔订单最多退款 {self.MAX_REFUNDS} 次")
            # The lot moves under the user's lock: read it there, after any spend in flight.
            User.locked_balance(order.user_id)
            lot = Lot.objects.get(order=order)
            left = min(order.amount - committed, lot.paid_left)
            if up_to:  # `amount` is a ceiling: refund what is unspent now, at most that
                amount = min(amount, left)
                if amount == 0:
                    raise RefundRefused("已全部消费，没有可退的金额")
            if amount > left:
                raise RefundRefused(f"退款金额超过可退金额 ¥{format_fen(left)}（未消费的本金）")
            removed = bonus_share(lot.state(), amount)
            manual = order.past_refund_window
            refund = Refund.objects.create(
                order=order,
                out_refund_no=out_refund_no,
                amount=amount,
                reason=reason[:200],
                requested_by=requested_by,
                manual=manual,
                status=Refund.Status.MANUAL if manual else Refund.Status.PROCESSING,
            )
            links = {"order": order, "refund": refund, "operator": requested_by}
            LedgerEntry.post(
                order.user_id, -amount, LedgerEntry.Kind.REFUND, reason=reason[:200], lots=ToLot(lot.pk, -amount, 0), **links
            )
            if removed:
                LedgerEntry.post(
                    order.user_id,
                    -removed,
                    LedgerEntry.Kind.BONUS_REMOVAL,
                    reason=f"退款 ¥{format_fen(amount)}，扣回对应赠送",
                    lots=ToLot(lot.pk, 0, -removed),
                    **links,
                )
        return refund


@dataclass(frozen=True)
class RefundTerms:
    """A recharge's refund, computed (docs/stored-value.md#refunds): what was paid and given,
    what spends consumed of each (pro rata), what was refunded or expired, and what is left:
    the paid money left is refundable; the bonus left goes with it."""

    paid: int
    bonus: int
    consumed_paid: int
    consumed_bonus: int
    refunded: int
    bonus_gone: int  # removed with refunds, or expired
    paid_left: int
    bonus_left: int
    bonus_expires_at: datetime | None

    @classmethod
    def of(cls, lot: Lot) -> RefundTerms:
        kinds = LedgerEntry.Kind
        moves = {
            kind: (paid, bonus)
            for kind, paid, bonus in lot.moves.values("entry__kind")
            .annotate(p=Sum("paid"), b=Sum("bonus"))
            .values_list("entry__kind", "p", "b")
        }

        def taken(*names: str) -> tuple[int, int]:
            return (-sum(moves.get(n, (0, 0))[0] for n in names), -sum(moves.get(n, (0, 0))[1] for n in names))

        consumed = taken(kinds.SPEND, kinds.SPEND_REVERSAL, kinds.ADJUSTMENT)
        refunded, _ = taken(kinds.REFUND, kinds.REFUND_RETURN)
        _, gone = taken(kinds.BONUS_REMOVAL, kinds.BONUS_RETURN, kinds.BONUS_EXPIRY)
        return cls(lot.paid, lot.bonus, *consumed, refunded, gone, lot.paid_left, lot.bonus_left, lot.bonus_expires_at)

    @property
    def consumed(self) -> int:
        return self.consumed_paid + self.consumed_bonus

    @property
    def refundable(self) -> int:
        return self.paid_left


class Refund(models.Model):
    """A refund of (part of) a paid order, started by an operator, finished by WeChat."""

    class Status(models.IntegerChoices):
        PROCESSING = 0, "退款中"
        SUCCESS = 1, "退款成功"
        CLOSED = 2, "退款关闭"
        FAILED = 3, "退款失败"
        ABNORMAL = 4, "退款异常"
        # Past WeChat's refund window (a year after payment): paid by the merchant by hand,
        # never sent to WeChat; an operator records how (Refund.record_payout).
        MANUAL = 5, "待线下退款"

    # Not ended: 退款异常 (CHANGE) is resolved by the merchant in WeChat's merchant platform,
    # after which WeChat reports SUCCESS.
    OPEN = (Status.PROCESSING, Status.ABNORMAL)

    order = models.ForeignKey(RechargeOrder, on_delete=models.PROTECT, related_name="refunds", verbose_name="订单")
    out_refund_no = models.CharField("商户退款单号", max_length=64, unique=True, editable=False)
    amount = models.PositiveBigIntegerField("退款金额（分）", editable=False)
    status = models.PositiveSmallIntegerField("状态", choices=Status.choices, default=Status.PROCESSING, editable=False)
    reason = models.CharField("退款原因", max_length=200, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="操作人",
        editable=False,
    )
    refund_id = models.CharField("微信退款单号", max_length=32, unique=True, null=True, blank=True, editable=False)
    # WeChat answered our refund request (with a refund_id): from then on we only ask how it ended.
    accepted = models.BooleanField("微信已受理", default=False, editable=False)
    # When WeChat took it: the day WeChat's trade bill lists the refund on (the bill dates a
    # refund by its request, not by its success).
    accepted_at = models.DateTimeField("微信受理时间", null=True, blank=True, editable=False)
    last_error = models.CharField("最近错误", max_length=200, blank=True, editable=False)
    # A manual payout (线下退款): never WeChat's, so never in its bills; how it was paid.
    manual = models.BooleanField("线下退款", default=False, editable=False)
    payout = models.CharField("线下退款方式", max_length=200, blank=True, editable=False)
    paid_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="线下退款登记人",
        editable=False,
    )
    synced_at = models.DateTimeField("上次向微信查询", null=True, blank=True, editable=False)
    settled_at = models.DateTimeField("完成时间", null=True, blank=True, editable=False)
    created_at = models.DateTimeField("申请时间", default=timezone.now, editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "退款"
        verbose_name_plural = "退款"
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"], name="refund_status_created_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return self.out_refund_no

    @staticmethod
    def new_out_refund_no(now: datetime | None = None) -> str:
        """ "RF" + Beijing timestamp + random digits: 2 + 14 + 12 = 28 characters (WeChat allows 64)."""
        return stamped_number("RF", 12, now)

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    def accept(self, refund_id: str) -> None:
        """WeChat took the request (answered with its refund_id); the outcome comes later."""
        with transaction.atomic():
            refund = type(self).objects.select_for_update().get(pk=self.pk)
            if refund.status != self.Status.PROCESSING:
                return  # ended meanwhile; a later notify for it opens an incident
            refund.accepted = True
            refund.accepted_at = refund.accepted_at or timezone.now()
            refund.refund_id = refund.refund_id or refund_id or None
            refund.last_error = ""
            refund.save(update_fields=["accepted", "accepted_at", "refund_id", "last_error", "updated_at"])
        self.accepted, self.accepted_at, self.refund_id, self.last_error = (
            refund.accepted,
            refund.accepted_at,
            refund.refund_id,
            "",
        )

    def note_error(self, message: str) -> None:
        type(self).objects.filter(pk=self.pk).update(last_error=message[:200], updated_at=timezone.now())
        self.last_error = message[:200]

    def claim_sync(self, min_interval: timedelta) -> bool:
        """Claim the right to ask WeChat about this refund now (at most once per interval): one
        still 退款中, or 退款异常 (CHANGE is not final: the merchant may resolve it at WeChat)."""
        now = timezone.now()
        claimed = (
            type(self)
            .objects.filter(pk=self.pk, status__in=self.OPEN)
            .filter(Q(synced_at__isnull=True) | Q(synced_at__lte=now - min_interval))
            .update(synced_at=now)
        )
        return claimed == 1

    def record_payout(self, operator, payout: str) -> Outcome:
        """An operator paid this manual refund by hand (`payout`: how, e.g. 银行转账 and a
        reference): it ends as a success, once. CONFLICT when it is not a manual refund
        waiting to be paid."""
        payout = payout.strip()
        if not payout:
            raise ValueError("请填写线下退款方式（如银行转账及流水号）")
        with transaction.atomic():
            RechargeOrder.objects.select_for_update().filter(pk=self.order_id).values_list("pk").first()
            refund = type(self).objects.select_for_update().get(pk=self.pk)
            if not refund.manual or refund.status != self.Status.MANUAL:
                return DUPLICATE if refund.manual and refund.status == self.Status.SUCCESS else CONFLICT
            refund.payout, refund.paid_out_by = payout[:200], operator
            refund.save(update_fields=["payout", "paid_out_by", "updated_at"])
            outcome = self.settle(self.Status.SUCCESS)  # the same transaction, under the same locks
        self.refresh_from_db()
        return outcome

    def settle(self, status: int, refund_id: str = "", settled_at: datetime | None = None) -> Outcome:
        """Apply how the refund ended (a Refund.Status, as the provider reports it), once:
        APPLIED, DUPLICATE, or CONFLICT.

        SUCCESS: the order's refunded amount grows (status 已退款). CLOSED (退款关闭) or
        FAILED (WeChat refused the request): the balance is given back with a ledger row.
        ABNORMAL (CHANGE): the money left WeChat but did not reach the user; it stays
        debited (退款异常) for an operator to handle in the merchant platform, and a later
        SUCCESS (notify, query or bill) settles it as a success. A refund already ended
        another way is a CONFLICT for an incident; nothing changes.
        """
        new_status = self.Status(status)
        if new_status == self.Status.PROCESSING:
            raise ValueError("a refund still processing has not ended")
        with transaction.atomic():
            order = RechargeOrder.objects.select_for_update().get(pk=self.order_id)
            refund = type(self).objects.select_for_update().get(pk=self.pk)
            resolved = refund.status == self.Status.ABNORMAL and new_status == self.Status.SUCCESS
            # A manual payout ends by the operator's word: paid (record_payout) or called off.
            waiting = self.Status.MANUAL if refund.manual else self.Status.PROCESSING
            if refund.status != waiting and not resolved:
                return DUPLICATE if refund.status == new_status else CONFLICT
            refund.status = new_status
            refund.settled_at = settled_at or timezone.now()
            refund.refund_id = refund.refund_id or refund_id or None
            refund.save(update_fields=["status", "settled_at", "refund_id", "updated_at"])
            announced = {"refund": refund.out_refund_no, "order": order.out_trade_no, "member_id": order.user_id}
            if new_status == self.Status.SUCCESS:
                order.refunded_amount += refund.amount
                order.status = RechargeOrder.Status.REFUNDED
                order.save(update_fields=["refunded_amount", "status", "updated_at"])
                balance = User.locked_balance(order.user_id)
                emit("refund.succeeded", {**announced, "amount": refund.amount, "balance": balance})
            elif new_status in (self.Status.CLOSED, self.Status.FAILED):
                # The money and the bonus removed with it come back, each to the lot it left.
                returned: dict[str, str] = {
                    LedgerEntry.Kind.REFUND: LedgerEntry.Kind.REFUND_RETURN,
                    LedgerEntry.Kind.BONUS_REMOVAL: LedgerEntry.Kind.BONUS_RETURN,
                }
                for taken_pk, kind, amount in (
                    refund.ledger_entries.filter(kind__in=returned).order_by("pk").values_list("pk", "kind", "amount")
                ):
                    LedgerEntry.post(
                        order.user_id,
                        -amount,
                        returned[kind],
                        order=order,
                        refund=refund,
                        reason=f"{refund.get_status_display()}，退回余额",
                        lots=Mirror(taken_pk),
                    )
                balance = User.locked_balance(order.user_id)
                emit("refund.failed", {**announced, "amount": refund.amount, "balance": balance})
        self.status, self.settled_at, self.refund_id = refund.status, refund.settled_at, refund.refund_id
        return APPLIED


class LedgerEntry(models.Model):
    """Every change of a balance. A user's balance is the sum of their rows."""

    class Kind(models.TextChoices):
        RECHARGE = "recharge", "充值"
        REFUND = "refund", "退款"
        REFUND_RETURN = "refund_return", "退款退回"
        ADJUSTMENT = "adjustment", "调整"
        # The wallet's (wallet/models.py: a Charge and its Reversals point at their rows).
        SPEND = "spend", "消费"
        SPEND_REVERSAL = "spend_reversal", "消费撤销"
        # The bonus a recharge came with (its package's or tier's), and where it goes: removed
        # with a refund of its recharge (given back if that refund fails), or expired.
        BONUS = "bonus", "赠送"
        BONUS_REMOVAL = "bonus_removal", "赠送扣回"
        BONUS_RETURN = "bonus_return", "赠送退回"
        BONUS_EXPIRY = "bonus_expiry", "赠送过期"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries", verbose_name="用户"
    )
    amount = models.BigIntegerField("变动（分）")
    kind = models.CharField("类型", max_length=16, choices=Kind.choices)
    order = models.ForeignKey(
        RechargeOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries", verbose_name="订单"
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries", verbose_name="退款"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="操作人"
    )
    balance_after = models.BigIntegerField("变动后余额（分）")
    reason = models.CharField("说明", max_length=200, blank=True)
    # An operator's adjustment form carries a one-time number: submitting it twice adjusts once.
    request_no = models.CharField("申请单号", max_length=40, unique=True, null=True, blank=True, editable=False)
    created_at = models.DateTimeField("时间", default=timezone.now)

    class Meta:
        verbose_name = "余额流水"
        verbose_name_plural = "余额流水"
        ordering = ["-created_at", "-pk"]
        indexes = [
            # A user's latest rows (the user page) and the ledger list, newest first.
            models.Index(fields=["user", "-created_at", "-id"], name="ledger_user_created_idx"),
            models.Index(fields=["-created_at", "-id"], name="ledger_created_idx"),
        ]
        constraints = [
            # A paid order is credited exactly once, whatever the code does.
            models.UniqueConstraint(fields=["order"], condition=models.Q(kind="recharge"), name="ledger_one_recharge_per_order"),
            # A refund is debited once and given back at most once.
            models.UniqueConstraint(
                fields=["refund", "kind"], condition=models.Q(refund__isnull=False), name="ledger_one_row_per_refund_and_kind"
            ),
            models.CheckConstraint(condition=models.Q(balance_after__gte=0), name="ledger_balance_after_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {format_fen(self.amount)}"

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    @property
    def balance_after_yuan(self) -> str:
        return format_fen(self.balance_after)

    @staticmethod
    def new_request_no(now: datetime | None = None) -> str:
        """ "AJ" + Beijing timestamp + random digits, for an adjustment form."""
        return stamped_number("AJ", 12, now)

    @classmethod
    def post(
        cls,
        user_id: int,
        amount: int,
        kind: str,
        *,
        order: RechargeOrder | None = None,
        order_id: int | None = None,
        refund: Refund | None = None,
        operator=None,
        reason: str = "",
        request_no: str | None = None,
        lots: LotRule,
    ) -> LedgerEntry:
        """Change a balance by `amount` fen (negative: a debit) and write its row, under the user's row lock,
        with its shares of the user's lots as `lots` says (the rules: orders/allocation.py).

        Raises InsufficientBalance rather than go below zero (the database refuses it too).
        Joins the caller's transaction.
        """

        # Every notify comes through here: compiled statements (common/statements.py). The
        # users table is accounts' own: the balance moves through User.move_balance.
        order_id = order.pk if order is not None else order_id
        created_at = timezone.now()
        with transaction.atomic(savepoint=False):
            try:
                balance = User.move_balance(user_id, amount)
            except ValueError as exc:
                raise InsufficientBalance(exc.args[0]) from None
            pk = _INSERT_LEDGER_ENTRY.run(
                user=user_id,
                amount=amount,
                kind=kind,
                order=order_id,
                refund=refund.pk if refund else None,
                operator=operator.pk if operator else None,
                balance_after=balance,
                reason=reason,
                request_no=request_no or None,
                created_at=created_at,
            )
            for lot_id, paid, bonus in lots.shares(user_id, amount, created_at):
                if not lots.opens:
                    _ADD_TO_LOT.run(pk=lot_id, paid=paid, bonus=bonus)
                _INSERT_LOT_MOVE.run(entry=pk, lot=lot_id, paid=paid, bonus=bonus)
        return cls(
            pk=pk,
            user_id=user_id,
            amount=amount,
            kind=kind,
            order_id=order_id,
            refund=refund,
            operator=operator,
            balance_after=balance,
            reason=reason,
            request_no=request_no or None,
            created_at=created_at,
        )

    @classmethod
    def adjust(cls, user_id: int, amount: int, reason: str, operator, request_no: str | None = None) -> LedgerEntry:
        """An operator's balance adjustment (signed fen) with its reason; never below zero.

        A form's `request_no` makes a double submission one adjustment.
        """

        reason = reason.strip()
        if amount == 0:
            raise ValueError("调整金额不能为 0")
        if not reason:
            raise ValueError("请填写调整原因")
        with transaction.atomic():
            # Under the user's row lock, so that two submissions of one form see each other.
            User.objects.select_for_update().filter(pk=user_id).values_list("pk").first()
            if request_no and cls.objects.filter(request_no=request_no).exists():
                raise ValueError("该调整已提交，请勿重复提交")
            try:
                # An operator's credit is a lot of its own, counted as bonus: it was not paid
                # through WeChat, so no refund can send it there (docs/stored-value.md).
                lots = OpenLot(gift=True) if amount > 0 else Consume()
                entry = cls.post(
                    user_id, amount, cls.Kind.ADJUSTMENT, operator=operator, reason=reason[:200], request_no=request_no, lots=lots
                )
            except InsufficientBalance as exc:
                raise ValueError(f"余额 ¥{format_fen(exc.balance)} 不足以扣减 ¥{format_fen(-amount)}") from exc
            emit(
                "balance.adjusted",
                {"member_id": user_id, "amount": amount, "balance": entry.balance_after, "reason": entry.reason},
            )
            return entry


class Lot(models.Model):
    """One credit of stored value and what is left of it: a paid recharge (its paid money and
    the bonus it came with) or an operator's credit (bonus only). Spends take from the oldest
    lot first, paid and bonus in the lot's proportion; a refund returns at most the lot's paid
    money left and removes its bonus (orders/allocation.py, docs/stored-value.md).

    `paid_left` and `bonus_left` move only with a ledger row (LedgerEntry.post, under the
    user's row lock), each by a LotMove: they are the sums of the lot's moves, and a user's
    balance is the sum of what their lots have left."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lots", verbose_name="用户")
    order = models.OneToOneField(
        RechargeOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="lot", verbose_name="充值订单"
    )
    paid = models.PositiveBigIntegerField("本金（分）")
    bonus = models.PositiveBigIntegerField("赠送（分）")
    paid_left = models.PositiveBigIntegerField("剩余本金（分）")
    bonus_left = models.PositiveBigIntegerField("剩余赠送（分）")
    bonus_expires_at = models.DateTimeField("赠送到期", null=True, blank=True)
    # When the member was told its bonus is about to expire (remind_expiring): once per lot.
    bonus_reminded_at = models.DateTimeField("到期提醒时间", null=True, blank=True, editable=False)
    created_at = models.DateTimeField("入账时间", default=timezone.now)

    class Meta:
        verbose_name = "储值批次"
        verbose_name_plural = "储值批次"
        ordering = ["-pk"]
        indexes = [
            # A user's lots with something left, oldest first: what a spend takes from.
            models.Index(fields=["user", "id"], condition=Q(paid_left__gt=0) | Q(bonus_left__gt=0), name="lot_open_idx"),
            # Bonus to expire: the expiry job's scan.
            models.Index(fields=["bonus_expires_at"], condition=Q(bonus_left__gt=0), name="lot_bonus_expiry_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(paid_left__lte=models.F("paid")), name="lot_paid_left_within_paid"),
            models.CheckConstraint(condition=Q(bonus_left__lte=models.F("bonus")), name="lot_bonus_left_within_bonus"),
        ]

    def __str__(self) -> str:
        return f"{self.order or '调整'} 本金 {format_fen(self.paid_left)} 赠送 {format_fen(self.bonus_left)}"

    @property
    def consumed(self) -> int:
        """What spends and refunds took of it (less what came back)."""
        return self.paid + self.bonus - self.paid_left - self.bonus_left

    def state(self) -> LotState:
        return LotState(self.pk, self.paid, self.bonus, self.paid_left, self.bonus_left)

    @classmethod
    def open_states(cls, user_id: int) -> list[LotState]:
        """The user's lots with something left, oldest first (read under the user's lock)."""
        return [LotState(*row) for row in _OPEN_LOTS.rows(user_id=user_id)]

    @classmethod
    def bonuses_of_package(cls, user_id: int, package_id: int) -> int:
        """How many of the user's recharges of this package got its bonus."""
        return cls.objects.filter(user_id=user_id, order__package_id=package_id, bonus__gt=0).count()

    @classmethod
    def purchases_of_package(cls, user_id: int, package_id: int) -> int:
        """How many of the user's recharges of this package were credited, with its bonus or not."""
        return cls.objects.filter(user_id=user_id, order__package_id=package_id).count()

    @classmethod
    def expire_due(cls, stop=None, batch: int = 500) -> tuple[int, int]:
        """Expire every bonus past its date, a lot at a time (each in its own transaction, so
        several runners may work at once): (lots expired, fen removed). `stop` (an Event)
        ends the pass between lots."""
        expired = fen = 0
        while stop is None or not stop.is_set():
            due = list(
                cls.objects.filter(bonus_left__gt=0, bonus_expires_at__lte=timezone.now()).order_by("bonus_expires_at", "pk")[
                    :batch
                ]
            )
            done = 0
            for lot in due:
                if stop is not None and stop.is_set():
                    break
                try:
                    entry = lot.expire_bonus()
                except Exception:  # one failing lot is logged; the pass goes on
                    logger.exception("expiring the bonus of lot %s failed", lot.pk)
                    continue
                if entry is not None:
                    expired, fen, done = expired + 1, fen - entry.amount, done + 1
            if len(due) < batch or not done:
                break
        return expired, fen

    @classmethod
    def remind_expiring(cls, now: datetime | None = None) -> int:
        """Announce (event bonus.expiring) the bonus that expires within BONUS_REMINDER_DAYS,
        once per lot and one event per member however many of their lots it is: the sum left
        and the first last day. Each member in a transaction of its own; lots another runner
        holds are left to it. How many members were told."""
        now = now or timezone.now()
        soon = cls.objects.filter(
            bonus_left__gt=0,
            bonus_reminded_at__isnull=True,
            bonus_expires_at__gt=now,
            bonus_expires_at__lte=now + timedelta(days=settings.BONUS_REMINDER_DAYS),
        )
        told = 0
        for user_id in soon.order_by().values_list("user_id", flat=True).distinct():
            with transaction.atomic():
                lots = list(soon.filter(user_id=user_id).select_for_update(skip_locked=True).order_by("bonus_expires_at"))
                if not lots:
                    continue
                cls.objects.filter(pk__in=[lot.pk for lot in lots]).update(bonus_reminded_at=now)
                first = lots[0].bonus_expires_at
                assert first is not None  # the filter's
                emit(
                    "bonus.expiring",
                    {
                        "member_id": user_id,
                        "amount": sum(lot.bonus_left for lot in lots),
                        "expires_on": beijing_text(first - timedelta(seconds=1), "%Y-%m-%d"),
                        "balance": User.objects.filter(pk=user_id).values_list("balance", flat=True).get(),
                    },
                )
                told += 1
        return told

    def expire_bonus(self, now: datetime | None = None) -> LedgerEntry | None:
        """Remove what is left of the lot's bonus once its date has passed, with a 赠送过期 row
        (once: under the user's lock, the lot read again). None when there was nothing to expire."""
        now = now or timezone.now()
        with transaction.atomic():
            User.locked_balance(self.user_id)
            lot = type(self).objects.get(pk=self.pk)
            if not lot.bonus_left or lot.bonus_expires_at is None or lot.bonus_expires_at > now:
                return None
            entry = LedgerEntry.post(
                lot.user_id,
                -lot.bonus_left,
                LedgerEntry.Kind.BONUS_EXPIRY,
                order_id=lot.order_id,
                lots=ToLot(lot.pk, 0, -lot.bonus_left),
                reason=bonus_note(lot.bonus_expires_at).replace("有效期至", "赠送金额有效期至") + "，已到期",
            )
            emit(
                "bonus.expired",
                {"member_id": lot.user_id, "amount": -entry.amount, "balance": entry.balance_after, "lot": lot.pk},
            )
        self.bonus_left = 0
        return entry


class LotMove(models.Model):
    """One ledger row's share of one lot: paid and bonus fen, signed as the row is."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="moves", verbose_name="余额流水")
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="moves", verbose_name="储值批次")
    paid = models.BigIntegerField("本金（分）")
    bonus = models.BigIntegerField("赠送（分）")

    class Meta:
        verbose_name = "批次变动"
        verbose_name_plural = "批次变动"
        constraints = [models.UniqueConstraint(fields=["entry", "lot"], name="lot_move_one_per_entry_and_lot")]

    def __str__(self) -> str:
        return f"{self.entry_id} → {self.lot_id}: {self.paid} + {self.bonus}"


def bonus_expiry(paid_at: datetime, days: int) -> datetime:
    """When bonus valid `days` days from `paid_at` expires: at the end of that Beijing day (the
    midnight after it), so that "有效期至 <date>" holds the whole of that date."""
    last_day = paid_at.astimezone(BEIJING).date() + timedelta(days=days)
    return datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=BEIJING)


def bonus_note(expires: datetime | None) -> str:
    """The bonus row's note: the last day it is valid, shown on the statement from the start."""
    return f"有效期至 {beijing_text(expires - timedelta(seconds=1), '%Y-%m-%d')}" if expires else ""


# -- which lots a ledger row moves (LedgerEntry.post's `lots`) --------------------------------


class LotRule:
    """Says which lots a ledger row moves, under the user's row lock (taken by the row)."""

    # The lot's row was written with its share already (a new lot): nothing to add to it.
    opens = False

    def shares(self, user_id: int, amount: int, created_at: datetime) -> list[Share]:
        raise NotImplementedError


class OpenLot(LotRule):
    """A credit that is a lot of its own: a paid recharge (paid money, with the bonus it will get
    from its BONUS row) or an operator's credit (`gift`: bonus only). `id` is the new lot's."""

    opens = True

    def __init__(self, order_id: int | None = None, bonus: int = 0, bonus_expires_at=None, gift: bool = False):
        self.order_id, self.bonus, self.bonus_expires_at, self.gift = order_id, bonus, bonus_expires_at, gift
        self.id: int = 0

    def shares(self, user_id, amount, created_at):
        paid, bonus = (0, amount) if self.gift else (amount, self.bonus)
        self.id = _INSERT_LOT.run(
            user=user_id,
            order=self.order_id,
            paid=paid,
            bonus=bonus,
            paid_left=paid,
            bonus_left=amount - paid,
            bonus_expires_at=self.bonus_expires_at,
            created_at=created_at,
        )
        return [(self.id, paid, amount - paid)]


class ToLot(LotRule):
    """Exactly this share of one lot (a bonus credited, a refund, a bonus removed or expired)."""

    def __init__(self, lot_id: int, paid: int, bonus: int):
        self.share = (lot_id, paid, bonus)

    def shares(self, user_id, amount, created_at):
        if self.share[1] + self.share[2] != amount:
            raise ValueError(f"a share of {self.share} for a row of {amount}")
        return [self.share]


class Consume(LotRule):
    """A debit taken from the user's lots, oldest first, paid and bonus pro rata (a spend, an
    operator's debit). The balance was checked by the row: the lots hold it."""

    def shares(self, user_id, amount, created_at):
        return consume(Lot.open_states(user_id), -amount)


class Mirror(LotRule):
    """Give back exactly what another row took (a failed refund's money and bonus)."""

    def __init__(self, entry_id: int):
        self.entry_id = entry_id

    def shares(self, user_id, amount, created_at):
        shares = [(lot, -paid, -bonus) for lot, paid, bonus in _moves_of([self.entry_id])]
        if sum(paid + bonus for _, paid, bonus in shares) != amount:
            raise ValueError(f"row {self.entry_id} did not take {-amount}")
        return shares


class GiveBack(LotRule):
    """Give back part of a debit to the lots it took from (a spend's reversal): the newest of
    them first, less what earlier reversals gave back."""

    def __init__(self, taken_by: int, returned_by: list[int]):
        self.taken_by, self.returned_by = taken_by, returned_by

    def shares(self, user_id, amount, created_at):
        return give_back(_moves_of([self.taken_by]), _moves_of(self.returned_by), amount)


def _moves_of(entry_ids: list[int]) -> list[Share]:
    """The shares the rows took or gave, the oldest lot first."""
    moves = LotMove.objects.filter(entry_id__in=entry_ids).order_by("lot_id", "pk")
    return [(lot, paid, bonus) for lot, paid, bonus in moves.values_list("lot_id", "paid", "bonus")] if entry_ids else []


# The notify path's statements (RechargeOrder.pay, LedgerEntry.post).
_LOCK_FOR_PAYMENT = Statement.select(
    RechargeOrder,
    lambda p: (
        RechargeOrder.objects.select_for_update()
        .filter(out_trade_no=p("out_trade_no"))
        .values_list(
            "id", "user_id", "amount", "status", "transaction_id", "bonus", "bonus_valid_days", "package_id", "package_limit"
        )
    ),
)
_MARK_PAID = Statement.update_by_pk(RechargeOrder, ["status", "transaction_id", "paid_at", "updated_at"])
_INSERT_LEDGER_ENTRY = Statement.insert(
    LedgerEntry,
    ["user", "amount", "kind", "order", "refund", "operator", "balance_after", "reason", "request_no", "created_at"],
)
_INSERT_LOT = Statement.insert(
    Lot, ["user", "order", "paid", "bonus", "paid_left", "bonus_left", "bonus_expires_at", "created_at"]
)
_ADD_TO_LOT = Statement.update(
    Lot,
    lambda p: (
        Lot.objects.filter(pk=p("pk")),
        {"paid_left": models.F("paid_left") + p("paid", "paid"), "bonus_left": models.F("bonus_left") + p("bonus", "bonus")},
    ),
)
_INSERT_LOT_MOVE = Statement.insert(LotMove, ["entry", "lot", "paid", "bonus"])
_OPEN_LOTS = Statement.select(
    Lot,
    lambda p: (
        Lot.objects.filter(user_id=p("user_id", "user"))
        .filter(Q(paid_left__gt=0) | Q(bonus_left__gt=0))
        .order_by("id")
        .values_list("id", "paid", "bonus", "paid_left", "bonus_left")
    ),
)

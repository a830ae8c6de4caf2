"""Payment flows across apps: place an order with WeChat, apply a result, close, sync, refund.

Rules (docs/product.md#6-payment-rules): the server alone sets the amount; money moves in one
transaction under row locks; WeChat is never called inside a transaction; the database's
unique constraints back every "exactly once".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.urls import reverse
from django.utils import timezone

from accounts.binding import OTHER, paying_wechat
from accounts.models import User
from common.http import in_wechat, on_phone
from offers.models import BonusTier, Package
from orders.models import (  # noqa: F401 (UnknownOrder, AmountMismatch and RefundRefused are part of this API)
    APPLIED,
    CONFLICT,
    DUPLICATE,
    AmountMismatch,
    Lot,
    Outcome,
    Payment,
    RechargeOrder,
    Refund,
    RefundRefused,
    UnknownOrder,
)
from payments.models import Incident, Notification
from payments.providers import provider
from payments.providers.base import (
    ORDER_CLOSED,
    ORDER_NOT_EXIST,
    ORDER_PAID,
    REFUND_NOT_EXIST,
    PayAction,
    Provider,
    TradeState,
    WeChatError,
)
from payments.refund_requests import RefundRequest

logger = logging.getLogger(__name__)

AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
PREPAY_TTL = timedelta(hours=2)
ORDER_BODY = "余额充值"
REFUND_DESCRIPTION = "余额充值退款"
# A pending order is asked about at most this often by the pages' status polls...
STATUS_POLL_INTERVAL = timedelta(seconds=5)
# ... and this often right after WeChat's client said the user paid (`?paid=1`), when a
# prompt answer matters most.
PAID_POLL_INTERVAL = timedelta(seconds=1)
# Unified-order errors after which WeChat asks for the same request again (docs/wechat-pay-v2.md#error-codes-the-code-acts-on,
# docs/wechat-pay-v3.md#error-codes); asked once more at once, then the order is refused.
SAME_REQUEST_AGAIN = {"SYSTEMERROR", "SYSTEM_ERROR", "BIZERR_NEED_RETRY"}


class InvalidAmount(ValueError):
    pass


class OpenidRequired(Exception):
    pass


class TooManyOpenOrders(Exception):
    """The user already has RECHARGE_MAX_OPEN_ORDERS orders that can still be paid."""


class BalanceCapReached(Exception):
    """Paid, this order would take the balance over BALANCE_CAP_FEN, counting the orders that
    can still be paid: `allowed` fen may still be recharged (0: none)."""

    def __init__(self, allowed: int):
        super().__init__(allowed)
        self.allowed = allowed


class PackageUnavailable(Exception):
    """The package asked for is unknown, switched off or outside its dates (the message says which, in Chinese)."""


class PackageLimitReached(Exception):
    """The user has bought this package as often as it allows (paid, or an order that can still be paid)."""

    def __init__(self, package: Package):
        super().__init__(package.pk)
        self.package = package


@dataclass(frozen=True)
class Offer:
    """What an order promises when it is placed: the package bought (if any), and the bonus of
    that package or of the best tier the amount reaches (docs/stored-value.md#packages)."""

    amount: int
    package: Package | None = None
    bonus: int = 0
    bonus_valid_days: int | None = None

    @classmethod
    def for_amount(cls, amount: int, now: datetime | None = None) -> Offer:
        tier = BonusTier.best_for(amount, now)
        if tier is None:
            return cls(amount)
        return cls(amount, bonus=tier.bonus, bonus_valid_days=tier.bonus_valid_days)

    @classmethod
    def for_package(cls, package_id: int, now: datetime | None = None) -> Offer:
        package = Package.objects.filter(pk=package_id).first()
        if package is None or not package.is_on_sale(now):
            raise PackageUnavailable("该套餐已下架或不在活动时间内，请刷新页面后重新选择")
        return cls(package.price, package, package.bonus, package.bonus_valid_days)

    @property
    def limit(self) -> int | None:
        return self.package.per_user_limit if self.package is not None else None


def offers_on_sale(now: datetime | None = None) -> dict[str, list[dict]]:
    """The packages on sale, in the page's order, and the tiers a custom amount may reach."""
    return {
        "packages": [package.to_dict() for package in Package.on_sale(now)],
        "tiers": [
            {"threshold_fen": t.threshold, "bonus_fen": t.bonus, "bonus_valid_days": t.bonus_valid_days, "label": t.label}
            for t in BonusTier.on_sale(now)
        ],
    }


class OrderRefused(Exception):
    """WeChat refused to place the order (`error`): it is closed as 下单失败, nothing was charged."""

    def __init__(self, order: RechargeOrder, error: WeChatError):
        super().__init__(str(error))
        self.order, self.error = order, error


class PaymentBeingConfirmed(Exception):
    """WeChat took the money for this order, and it is not credited yet: it must not be paid again."""

    def __init__(self, order: RechargeOrder):
        super().__init__(order.out_trade_no)
        self.order = order


def parse_amount(value: object) -> int:
    """Yuan text from a person ("19.90") to fen (1990): exact, bounded, ASCII digits only."""
    if not isinstance(value, str) or not AMOUNT.match(value):
        raise InvalidAmount(value)
    fen = int(Decimal(value) * 100)
    if not settings.RECHARGE_MIN_FEN <= fen <= settings.RECHARGE_MAX_FEN:
        raise InvalidAmount(value)
    return fen


@dataclass(frozen=True)
class Done:
    """What a flow that applies WeChat's word did: its outcome, the incident it opened or
    counted (None when none), and for a payment what RechargeOrder.pay said. Callers record
    from it (a notify's outcome, a reconciliation difference) without asking again."""

    outcome: Outcome
    incident: Incident | None = None
    payment: Payment | None = None


@dataclass
class Prepay:
    """A placed order and what the client must do to pay it."""

    order: RechargeOrder
    action: PayAction

    @property
    def pay_params(self) -> dict[str, str]:
        """The JSAPI fields for getBrandWCPayRequest / wx.requestPayment, signed."""
        return self.action.params


class PayMethod(StrEnum):
    """How the browser pays (docs/paying.md): inside WeChat (JSAPI), by scanning a QR code with
    WeChat (Native: a desktop, or a phone without H5), or in a phone's browser (H5)."""

    JSAPI = "jsapi"
    NATIVE = "native"
    H5 = "h5"


def pay_methods(request) -> list[str]:
    """The ways this browser may pay, the usual one first (docs/paying.md): inside WeChat,
    JSAPI (or a QR code another WeChat scans); in a phone's browser, H5 where the merchant
    has it (WECHAT_H5_PAY), else a QR code; on a desktop, a QR code."""
    Method = PayMethod
    if in_wechat(request):
        # Only the account's own WeChat may pay a JSAPI order (WeChat refuses another: 下单账号与
        # 支付账号不一致); another WeChat may still scan a QR code for this account.
        return [Method.NATIVE] if paying_wechat(request) == OTHER else [Method.JSAPI, Method.NATIVE]
    if on_phone(request) and settings.WECHAT_H5_PAY:
        return [Method.H5, Method.NATIVE]
    return [Method.NATIVE]


TRADE_TYPES = {
    PayMethod.JSAPI: RechargeOrder.TradeType.JSAPI,
    PayMethod.NATIVE: RechargeOrder.TradeType.NATIVE,
    PayMethod.H5: RechargeOrder.TradeType.MWEB,
}
# How long WeChat's pay links last: a Native code_url two hours, an h5_url five minutes
# (docs/wechat-pay-v2.md, docs/wechat-pay-v3.md).
CODE_URL_TTL = timedelta(hours=2)
PAY_URL_MAX = 512  # RechargeOrder.pay_url's length
H5_URL_TTL = timedelta(minutes=5)
# WeChat's answer when the merchant has no H5 pay (商户无此接口权限): fall back to Native.
# v2 spells it NOAUTH, v3 NO_AUTH (docs/wechat-pay-v2.md, docs/wechat-pay-v3.md).
NO_AUTH = ("NOAUTH", "NO_AUTH")


class H5Unavailable(Exception):
    """WeChat refused H5 pay for this merchant (NO_AUTH): the order is closed as 下单失败."""


def prepay(user: User, amount: int | Offer, channel: str, client_ip: str, method: str = PayMethod.JSAPI) -> Prepay:
    """Create (or reuse) a pending order, place it with WeChat, and say how to pay it.

    `method`: JSAPI (the user's openid of this channel's app pays), Native (a QR code any
    WeChat may scan) or H5 (WeChat's h5_url, back to `return_url`). A pending order of the
    same user, amount, offer, channel, method and openid that can still be paid is reused:
    same out_trade_no, never a second charge. When WeChat refuses the order (it answered, with
    an error), the order is closed as 下单失败 and OrderRefused raised (H5Unavailable for an
    H5 order the merchant may not place); when the call failed on the way (WeChat may have the
    order), the order stays pending, WeChatError propagates, and a retry places it again with
    the same out_trade_no. PaymentBeingConfirmed: WeChat says the order was paid already, and
    it could not be credited now. An H5 order's way back is its order page. `amount` is an Offer (a package, or an amount with its
    tier's bonus) or fen, whose offer is the best tier it reaches.
    """
    offer = amount if isinstance(amount, Offer) else Offer.for_amount(amount)
    method = PayMethod(method)
    if method == PayMethod.JSAPI:
        openid = user.miniprogram_openid if channel == RechargeOrder.Channel.MINIPROGRAM else user.openid
        if not openid:
            raise OpenidRequired
    else:
        openid = ""  # any WeChat may pay a Native QR code or an H5 page: the order names none
    pay = provider(channel)
    for _ in range(2):
        order = _pending_order(user, offer, channel, openid, TRADE_TYPES[method])
        if _still_payable(order):
            return Prepay(order, pay_action(pay, order))
        try:
            placed = _place(pay, order, openid, client_ip)
        except WeChatError as exc:
            if exc.kind == ORDER_PAID:
                _paid_already(order)
                continue  # credited now: place a new order
            if exc.kind == ORDER_CLOSED:
                sync_order(order)  # WeChat knows better: settle it, then place a new order
                continue
            if not exc.answered:
                raise  # WeChat may have it: kept pending, placed again (or queried) later
            if order.refuse(exc.code):
                logger.warning("WeChat refused order %s: %s", order.out_trade_no, exc)
                if method == PayMethod.H5 and exc.code in NO_AUTH:
                    raise H5Unavailable(order) from exc
                raise OrderRefused(order, exc) from exc
            continue  # placed (or ended) meanwhile by a concurrent request: look again
        if _save_placed(order, placed):
            return Prepay(order, pay_action(pay, order))
        # Refused by a concurrent request for the same order meanwhile: place a new one.
    raise WeChatError("prepay: the order changed under us twice", "SYSTEMERROR", retryable=True)


def resume(order: RechargeOrder, client_ip: str) -> PayAction:
    """继续支付 of a pending 公众号 order, the way it was placed, never a new order: JSAPI's
    prepay_id signed again; Native's QR code, asked for again (same out_trade_no) once its
    code_url has lapsed; H5's page, with a fresh h5_url once five minutes have passed. The
    caller checked that the order is resumable."""
    pay = provider(order.channel)
    if not _still_payable(order):
        placed = _place(pay, order, order.openid, client_ip)
        if not _save_placed(order, placed):
            raise WeChatError("resume: the order is no longer pending", "ORDERCLOSED")
    return pay_action(pay, order)


def _still_payable(order: RechargeOrder) -> bool:
    """What WeChat gave for the order can still be used: its prepay_id (JSAPI), its code_url
    (Native), its h5_url (H5: five minutes; then it is asked for again)."""
    if order.trade_type == RechargeOrder.TradeType.JSAPI:
        return order.prepay_is_valid()
    return order.pay_url_is_valid()


def pay_action(pay: Provider, order: RechargeOrder) -> PayAction:
    """How the client pays this placed order (PayAction): sign JSAPI's fields, show Native's
    QR code, or go to H5's page with the way back (redirect_url: the order's page, which
    asks WeChat how it went; docs/paying.md)."""
    if order.trade_type == RechargeOrder.TradeType.NATIVE:
        return PayAction(PayAction.QRCODE, url=order.pay_url)
    if order.trade_type == RechargeOrder.TradeType.MWEB:
        back = settings.SITE_URL + reverse("orders:detail", args=[order.out_trade_no]) + "?from=h5"
        joiner = "&" if "?" in order.pay_url else "?"
        return PayAction(PayAction.REDIRECT, url=f"{order.pay_url}{joiner}{urlencode({'redirect_url': back})}")
    return pay.pay_action(order.prepay_id)


def _place(pay: Provider, order: RechargeOrder, openid: str, client_ip: str) -> str:
    """统一下单 in the order's way (its prepay_id, code_url or h5_url), asked once more at once
    after SYSTEMERROR, as WeChat asks (same parameters)."""
    common: dict[str, Any] = {
        "out_trade_no": order.out_trade_no,
        "total": order.amount,
        "description": ORDER_BODY,
        "notify_url": pay.notify_url("payment"),
        "client_ip": client_ip,
        "time_start": order.created_at,
        "time_expire": order.expires_at,
    }

    def place() -> str:
        if order.trade_type == RechargeOrder.TradeType.NATIVE:
            return pay.prepay_native(**common)
        if order.trade_type == RechargeOrder.TradeType.MWEB:
            return pay.prepay_h5(**common, site_url=settings.SITE_URL, site_name=settings.SITE_NAME)
        return pay.prepay(**common, openid=openid)

    try:
        return place()
    except WeChatError as exc:
        if exc.code not in SAME_REQUEST_AGAIN:
            raise
        logger.info("unified order %s answered %s; asking again", order.out_trade_no, exc.code)
    return place()


def _paid_already(order: RechargeOrder) -> None:
    """WeChat answered ORDERPAID: remember it, and credit it if the order query can. Raises
    PaymentBeingConfirmed when it could not be credited now."""
    order.note_paid_report()
    try:
        order = sync_order(order)
    except WeChatError as exc:
        logger.warning("order %s is paid at WeChat; its query failed: %s", order.out_trade_no, exc)
    if not order.is_credited:
        raise PaymentBeingConfirmed(order)


def _pending_order(user: User, offer: Offer, channel: str, openid: str, trade_type: str) -> RechargeOrder:
    amount = offer.amount
    with transaction.atomic():
        # One user's orders are placed one at a time: two taps make one order.
        balance = User.objects.select_for_update().filter(pk=user.pk).values_list("balance", flat=True).first() or 0
        now = timezone.now()
        # Orders that can still be paid: not one WeChat already reported paid (being confirmed).
        payable = RechargeOrder.objects.filter(
            user=user, status=RechargeOrder.Status.PENDING, expires_at__gt=now, paid_reported_at__isnull=True
        )
        # The same offer only: an order that promised another bonus is not this one.
        order = (
            payable.filter(channel=channel, amount=amount, openid=openid, expires_at__gt=now + RechargeOrder.REUSE_MARGIN)
            .filter(package=offer.package, bonus=offer.bonus, bonus_valid_days=offer.bonus_valid_days)
            .filter(trade_type=trade_type)
            .filter(Q(prepay_id="") | Q(prepay_expires_at__gt=now))
            .exclude(trade_type=RechargeOrder.TradeType.NATIVE, pay_url_expires_at__lte=now + RechargeOrder.REUSE_MARGIN)
            .order_by("-created_at")
            .first()
        )
        if order is not None:
            return order
        if payable.count() >= settings.RECHARGE_MAX_OPEN_ORDERS:
            raise TooManyOpenOrders
        if offer.package is not None and offer.limit is not None:
            # Bought (credited), or an order of it that may still be paid or that WeChat
            # reported paid: each counts once.
            in_flight_of_package = (
                RechargeOrder.objects.filter(user=user, status=RechargeOrder.Status.PENDING, package=offer.package)
                .filter(Q(expires_at__gt=now) | Q(paid_reported_at__isnull=False))
                .count()
            )
            used = Lot.purchases_of_package(user.pk, offer.package.pk) + in_flight_of_package
            if used >= offer.limit:
                raise PackageLimitReached(offer.package)
        # The balance cap counts every order that may still be paid (and those WeChat reported
        # paid but not yet credited), with the bonus each promised, under the user's lock:
        # orders in flight cannot together pass it once paid (docs/product.md#the-balance-cap).
        in_flight = (
            RechargeOrder.objects.filter(user=user, status=RechargeOrder.Status.PENDING)
            .filter(Q(expires_at__gt=now) | Q(paid_reported_at__isnull=False))
            .aggregate(total=Sum(F("amount") + F("bonus")))["total"]
            or 0
        )
        if balance + in_flight + amount + offer.bonus > settings.BALANCE_CAP_FEN:
            raise BalanceCapReached(max(0, settings.BALANCE_CAP_FEN - balance - in_flight))
        return RechargeOrder.objects.create(
            out_trade_no=RechargeOrder.new_out_trade_no(channel, now),
            user=user,
            amount=amount,
            channel=channel,
            openid=openid,
            package=offer.package,
            bonus=offer.bonus,
            bonus_valid_days=offer.bonus_valid_days,
            package_limit=offer.limit,
            trade_type=trade_type,
            created_at=now.replace(microsecond=0),
            expires_at=now.replace(microsecond=0) + timedelta(minutes=settings.RECHARGE_ORDER_TTL_MINUTES),
        )


def _save_placed(order: RechargeOrder, placed: str) -> bool:
    """Keep what WeChat gave for the order (JSAPI's prepay_id, Native's code_url, H5's h5_url)
    with how long it lasts; False if the order is no longer pending."""
    now = timezone.now()
    if order.trade_type == RechargeOrder.TradeType.JSAPI:
        expires = min(now + PREPAY_TTL, order.expires_at)
        fields = {"prepay_id": placed, "prepay_expires_at": expires}
    else:
        ttl = CODE_URL_TTL if order.trade_type == RechargeOrder.TradeType.NATIVE else H5_URL_TTL
        if len(placed) > PAY_URL_MAX:
            # A cut link is one WeChat's page refuses: never keep half of it.
            raise WeChatError(f"unifiedorder {order.out_trade_no}: a pay link of {len(placed)} characters", "BAD_ANSWER")
        fields = {"pay_url": placed, "pay_url_expires_at": min(now + ttl, order.expires_at)}
    saved = RechargeOrder.objects.filter(pk=order.pk, status=RechargeOrder.Status.PENDING).update(**fields, updated_at=now)
    for name, value in fields.items():
        setattr(order, name, value)
    return bool(saved)


def _link(log: Notification | None, incident: Incident) -> None:
    if log is not None:
        Notification.objects.filter(pk=log.pk).update(incident=incident)
        log.incident = incident


# -- payments -------------------------------------------------------------------------------


def apply_payment(
    out_trade_no: str, transaction_id: str, total_fee: int, paid_at: datetime, log: Notification | None = None
) -> Done:
    """Credit a verified payment once (RechargeOrder.pay) and, in the same transaction, the
    notify's outcome: whenever the money moved, its log row says so.

    Raises UnknownOrder, or AmountMismatch (nothing applied, an incident opened). Money
    taken for an order closed here is credited and opens an incident.
    """
    order = RechargeOrder.numbered(out_trade_no)
    try:
        with transaction.atomic():
            payment = order.pay(transaction_id, total_fee, paid_at)
            if log is not None:
                log.finish(payment.outcome, signature_valid=True, out_trade_no=out_trade_no)
    except AmountMismatch as exc:
        order.note_paid_report()  # the user paid: the pages say it is being confirmed
        mismatch = Incident.report(Incident.Kind.AMOUNT_MISMATCH, f"{exc}；未入账", order=order)
        _link(log, mismatch)
        exc.incident = mismatch
        raise
    except IntegrityError:
        # Lost a race that the row lock could not prevent (SQLite): the winner credited it.
        winner = RechargeOrder.objects.filter(out_trade_no=out_trade_no, transaction_id__isnull=False).first()
        if winner is None:
            raise
        other = winner.transaction_id if winner.transaction_id and winner.transaction_id != transaction_id else ""
        payment = Payment(DUPLICATE, winner.pk, other_transaction_id=other)
        if log is not None:
            log.finish(DUPLICATE, signature_valid=True, out_trade_no=out_trade_no)
    incident: Incident | None = None
    if payment.after_close:
        incident = Incident.report(
            Incident.Kind.PAID_AFTER_CLOSE,
            f"订单已关闭或过期后，微信支付仍收款 ¥{payment.order.amount_yuan}（{transaction_id}），已入账",
            order=payment.order,
        )
    elif payment.other_transaction_id:
        incident = Incident.report(
            Incident.Kind.OTHER_TRANSACTION,
            f"订单已由 {payment.other_transaction_id} 支付，微信又报告 {transaction_id}，未再次入账",
            order=payment.order,
        )
    if incident is not None:
        _link(log, incident)
    return Done(payment.outcome, incident, payment)


def sync_order(order: RechargeOrder) -> RechargeOrder:
    """Ask WeChat (order query) about a pending order and apply what it says."""
    if order.status != RechargeOrder.Status.PENDING:
        return order
    try:
        trade = provider(order.channel).query(order.out_trade_no)
    except WeChatError as exc:
        if exc.kind != ORDER_NOT_EXIST:
            raise
        if order.expires_at <= timezone.now():
            order.close()  # never reached WeChat and can no longer be paid
        return order
    state = trade.state
    if trade.is_paid:
        if not trade.transaction_id or trade.total is None:
            logger.error("order query %s says %s without a transaction_id or a valid total", order.out_trade_no, state)
            order.note_paid_report()
            return order
        try:
            apply_payment(order.out_trade_no, trade.transaction_id, trade.total, trade.paid_at or timezone.now())
        except AmountMismatch:
            pass  # an incident is open; nothing applied
    elif state in TradeState.ended_unpaid():
        order.close()
    order.refresh_from_db()
    return order


def poll_order(order: RechargeOrder, min_interval: timedelta = STATUS_POLL_INTERVAL) -> RechargeOrder:
    """The pages' status check: a pending order is asked about at most once every few seconds,
    however many pages poll it; in between they get what we know."""
    if order.status == RechargeOrder.Status.PENDING and order.claim_sync(min_interval):
        try:
            return sync_order(order)
        except WeChatError as exc:
            logger.warning("order query %s failed: %s", order.out_trade_no, exc)
    return order


def close_order(order: RechargeOrder) -> RechargeOrder:
    """Close a pending order at WeChat, then here. Money already taken wins: when WeChat
    says it is paid, the order is queried and credited instead."""
    if order.status != RechargeOrder.Status.PENDING:
        return order
    try:
        provider(order.channel).close(order.out_trade_no)
    except WeChatError as exc:
        if exc.kind == ORDER_PAID:
            order.note_paid_report()
            return sync_order(order)
        if exc.kind not in (ORDER_CLOSED, ORDER_NOT_EXIST):
            raise
    order.close()
    order.refresh_from_db()
    return order


class MismatchSettled(StrEnum):
    CREDIT = "credit"  # what WeChat took is the user's balance
    REFUND = "refund"  # what WeChat took goes back to the user's WeChat


@dataclass(frozen=True)
class Settled:
    order: RechargeOrder
    placed_amount: int  # the order's amount before it became what WeChat took
    refund: Refund | None


def settle_mismatch(order: RechargeOrder, how: MismatchSettled, reason: str, operator=None, out_refund_no: str = "") -> Settled:
    """An operator settles an order WeChat took another amount for (an amount-mismatch
    incident): WeChat is asked what it took, the order's amount becomes that and it is
    credited (RechargeOrder.pay_as_taken); to REFUND, the whole of it is refunded in the same
    transaction (nobody can spend it in between; no bonus) and sent to WeChat after it.

    Raises WeChatError (the query failed: nothing done) or RefundRefused: WeChat does not say
    it is paid, or the order is credited already.
    """
    reason = reason.strip()
    if not reason:
        raise RefundRefused("请填写处理说明")
    trade = provider(order.channel).query(order.out_trade_no)
    if not trade.is_paid or not trade.transaction_id or not trade.total:
        raise RefundRefused(f"微信显示该订单{trade.state}，没有可入账或退回的付款")
    placed, refund = order.amount, None
    with transaction.atomic():
        payment = order.pay_as_taken(
            trade.transaction_id, trade.total, trade.paid_at or timezone.now(), with_bonus=how == MismatchSettled.CREDIT
        )
        if payment.outcome != APPLIED:
            raise RefundRefused("订单已入账，不能再按微信实收处理；如需退款请在订单页退款")
        if how == MismatchSettled.REFUND:
            refund = order.start_refund(trade.total, reason, operator, out_refund_no)
    logger.info("order %s settled as %s: %s fen taken, %s placed", order.out_trade_no, how, trade.total, placed)
    if refund is not None:
        _send_now(refund)
    order.refresh_from_db()
    return Settled(order, placed, refund)


# -- refunds -------------------------------------------------------------------------------


def request_refund(order: RechargeOrder, amount: int, reason: str, operator=None, out_refund_no: str = "") -> Refund:
    """An operator refunds `amount` fen of a paid order: debit now (one transaction), then ask WeChat.

    Raises RefundRefused (nothing done). A WeChat failure that may pass keeps the refund
    处理中 for `sweep_orders` to send again with the same out_refund_no.
    """
    refund = order.start_refund(amount, reason, operator, out_refund_no)
    logger.info(
        "refund %s of %s fen for order %s requested by %s",
        refund.out_refund_no,
        amount,
        order.out_trade_no,
        getattr(operator, "pk", None),
    )
    _send_now(refund)
    return refund


def _send_now(refund: Refund) -> None:
    """Send a refund just made. It is on the books already (debited, 处理中): a failure of
    our own while sending must not hide that behind an error page; the sweeper sends it
    again with the same out_refund_no (sweep_orders)."""
    try:
        send_refund(refund)
    except Exception:
        logger.exception("refund %s not sent; sweep_orders sends it again", refund.out_refund_no)
        refund.note_error("发送失败（本站错误），稍后自动重试")


def submit_refund_request(user: User, reason: str) -> RefundRequest:
    """A member asks for their refundable money back (RefundRequest.submit); one approved by
    itself (recent and untouched) is sent to WeChat at once. Raises RequestRefused."""
    made = RefundRequest.submit(user, reason)
    if made.status == RefundRequest.Status.APPROVED:
        _send_all(made.refunds())
    return made


def approve_refund_request(refund_request: RefundRequest, operator, note: str = "") -> list[Refund]:
    """An operator approves a member's request: the refunds are made in one transaction, then
    sent to WeChat (a manual payout is not: an operator pays it by hand). Raises RequestRefused."""
    refunds = refund_request.approve(operator, note)
    _send_all(refunds)
    return refunds


def _send_all(refunds: list[Refund]) -> None:
    for refund in refunds:
        if not refund.manual:
            _send_now(refund)


def send_refund(refund: Refund) -> Refund:
    """Send (or send again: same out_refund_no, never a second refund) a refund request to WeChat."""
    refund.refresh_from_db(fields=["status"])
    if refund.status != Refund.Status.PROCESSING:
        return refund  # ended meanwhile (refused, or settled by another runner): nothing to send
    order = refund.order
    pay = provider(order.channel)
    try:
        answer = pay.refund(
            out_trade_no=order.out_trade_no,
            out_refund_no=refund.out_refund_no,
            total=order.amount,
            amount=refund.amount,
            reason=REFUND_DESCRIPTION,
            notify_url=pay.notify_url("refund"),
        )
    except WeChatError as exc:
        refund.note_error(f"{exc.code}: {exc}")
        if exc.retryable:
            logger.warning("refund %s not sent yet (%s); will retry with the same number", refund.out_refund_no, exc.code)
            return refund
        logger.error("refund %s refused by WeChat: %s", refund.out_refund_no, exc)
        settle_refund(refund, Refund.Status.FAILED)
        return refund
    refund.accept(answer.refund_id)
    if answer.state is not None and answer.is_final:  # v3 may answer with the outcome at once
        settle_refund(refund, answer.state, answer.refund_id, answer.settled_at, wechat_state=answer.wechat_state)
    return refund


def settle_refund(
    refund: Refund,
    status: int,
    refund_id: str = "",
    settled_at: datetime | None = None,
    log: Notification | None = None,
    wechat_state: str = "",
) -> Done:
    """Apply WeChat's outcome of a refund once (Refund.settle), with the notify's outcome in the
    same transaction; the incident a conflict or a 退款异常 opened comes back with the outcome."""
    with transaction.atomic():
        outcome = refund.settle(status, refund_id, settled_at)
        if log is not None:
            log.finish(
                Notification.Outcome.INCIDENT if outcome == CONFLICT else outcome,
                signature_valid=True,
                out_trade_no=refund.order.out_trade_no,
                out_refund_no=refund.out_refund_no,
            )
    incident: Incident | None = None
    if outcome == CONFLICT:
        refund.refresh_from_db()
        incident = Incident.report(
            Incident.Kind.REFUND_CONFLICT,
            f"退款 {refund.out_refund_no} 本地为「{refund.get_status_display()}」，微信报告 "
            f"{wechat_state or Refund.Status(status).label}",
            order=refund.order,
            refund=refund,
        )
    elif outcome == APPLIED and status == Refund.Status.ABNORMAL:
        incident = Incident.report(
            Incident.Kind.REFUND_ABNORMAL,
            f"退款 {refund.out_refund_no}（¥{refund.amount_yuan}）异常：退到用户银行卡失败，请在商户平台线下处理；用户余额已扣除",
            order=refund.order,
            refund=refund,
        )
    elif outcome == APPLIED and status == Refund.Status.SUCCESS:
        # A 退款异常 the merchant resolved at WeChat: its incident is done with. One an operator
        # had already marked handled may have been handled otherwise (the balance given back by
        # hand): the user may now have the money twice.
        abnormal = Incident.objects.filter(kind=Incident.Kind.REFUND_ABNORMAL, refund=refund)
        for resolved in abnormal.filter(resolved_at__isnull=True):
            resolved.resolve(None, "微信后来报告退款成功（已在商户平台处理）")
        if abnormal.filter(resolved_by__isnull=False).exists():
            incident = Incident.report(
                Incident.Kind.REFUND_CONFLICT,
                f"退款 {refund.out_refund_no}（¥{refund.amount_yuan}）异常已由运营人员处理，微信后来"
                "报告退款成功：如当时已手动退回余额，用户可能收到两次退款，请核实",
                order=refund.order,
                refund=refund,
            )
    if incident is not None:
        _link(log, incident)
    return Done(outcome, incident)


def sync_refund(refund: Refund) -> Refund:
    """Ask WeChat how a refund that is still 处理中 ended (refundquery), or send it if it never
    arrived; a 退款异常 is asked about too, until WeChat reports it resolved."""
    if refund.status not in Refund.OPEN:
        return refund
    if not refund.accepted:
        return send_refund(refund)
    try:
        answer = provider(refund.order.channel).query_refund(refund.out_refund_no)
    except WeChatError as exc:
        if exc.kind == REFUND_NOT_EXIST:
            return send_refund(refund)
        raise
    if (
        answer.state is not None
        and answer.is_final
        and (refund.status == Refund.Status.PROCESSING or answer.state != Refund.Status.ABNORMAL)
    ):
        # A 退款异常 settles as SUCCESS once resolved at WeChat; closed for it is a conflict.
        settle_refund(refund, answer.state, answer.refund_id, answer.settled_at, wechat_state=answer.wechat_state)
    refund.refresh_from_db()
    return refund

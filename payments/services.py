"""Payment flows across apps: place an order with WeChat, apply a result, close, sync.

Rules (SPEC.md section 6): the server alone sets the amount; money moves in one
transaction under row locks; WeChat is never called inside a transaction; the database's
unique constraints back every "exactly once".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from orders.models import LedgerEntry, RechargeOrder
from payments import wechat
from payments.models import Notification

logger = logging.getLogger(__name__)

AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
PREPAY_TTL = timedelta(hours=2)
# A pending order is offered again only while there is still time to pay it.
REUSE_MARGIN = timedelta(minutes=2)
ORDER_BODY = "余额充值"
APPLIED, DUPLICATE = "applied", "duplicate"


class InvalidAmount(ValueError):
    pass


class OpenidRequired(Exception):
    pass


class UnknownOrder(Exception):
    pass


class AmountMismatch(Exception):
    pass


def parse_amount(value: object) -> int:
    """Yuan text from a person ("19.90") to fen (1990): exact, bounded, ASCII digits only."""
    if not isinstance(value, str) or not AMOUNT.match(value):
        raise InvalidAmount(value)
    fen = int(Decimal(value) * 100)
    if not settings.RECHARGE_MIN_FEN <= fen <= settings.RECHARGE_MAX_FEN:
        raise InvalidAmount(value)
    return fen


@dataclass
class Prepay:
    order: RechargeOrder
    pay_params: dict[str, str]


def prepay(user: User, amount: int, channel: str, client_ip: str) -> Prepay:
    """Create (or reuse) a pending order and get WeChat's prepay and the signed pay params.

    A pending order of the same user, amount, channel and openid that can still be paid is
    reused: same out_trade_no, same prepay_id, never a second charge. WeChatError
    propagates with the order left pending; a retry reuses it.
    """
    openid = user.mp_openid if channel == RechargeOrder.Channel.MINIPROGRAM else user.openid
    if not openid:
        raise OpenidRequired
    pay = wechat.Pay.for_channel(channel)
    for _ in range(2):
        order = _pending_order(user, amount, channel, openid)
        if order.prepay_is_valid():
            return Prepay(order, pay.jsapi_params(order.prepay_id))
        try:
            answer = pay.unified_order(
                out_trade_no=order.out_trade_no, total_fee=order.amount, openid=openid, body=ORDER_BODY,
                notify_url=settings.SITE_URL + reverse("payments:notify"), client_ip=client_ip,
                time_start=order.created_at, time_expire=order.expires_at,
            )
        except wechat.WeChatError as exc:
            if exc.code not in ("ORDERPAID", "ORDERCLOSED"):
                raise
            sync_order(order)  # WeChat knows better: settle it, then place a new order
            continue
        return Prepay(_save_prepay(order, answer["prepay_id"]), pay.jsapi_params(answer["prepay_id"]))
    raise wechat.WeChatError("unifiedorder: the order changed under us twice", "SYSTEMERROR", retryable=True)


def _pending_order(user: User, amount: int, channel: str, openid: str) -> RechargeOrder:
    with transaction.atomic():
        # One user's orders are placed one at a time: two taps make one order.
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        now = timezone.now()
        order = (
            RechargeOrder.objects.filter(user=user, status=RechargeOrder.Status.PENDING, channel=channel, amount=amount,
                                         openid=openid, expires_at__gt=now + REUSE_MARGIN)
            .filter(Q(prepay_id="") | Q(prepay_expires_at__gt=now))
            .order_by("-created_at")
            .first()
        )
        if order is not None:
            return order
        return RechargeOrder.objects.create(
            out_trade_no=RechargeOrder.new_out_trade_no(channel, now), user=user, amount=amount, channel=channel,
            openid=openid, created_at=now.replace(microsecond=0),
            expires_at=now.replace(microsecond=0) + timedelta(minutes=settings.RECHARGE_ORDER_TTL_MINUTES),
        )


def _save_prepay(order: RechargeOrder, prepay_id: str) -> RechargeOrder:
    expires = min(timezone.now() + PREPAY_TTL, order.expires_at)
    RechargeOrder.objects.filter(pk=order.pk).update(prepay_id=prepay_id, prepay_expires_at=expires,
                                                    updated_at=timezone.now())
    order.prepay_id, order.prepay_expires_at = prepay_id, expires
    return order


def _parse_time_end(value: str | None) -> datetime:
    try:
        naive = datetime.strptime(value or "", "%Y%m%d%H%M%S")  # noqa: DTZ007 (Beijing time, made aware below)
    except ValueError:
        return timezone.now()
    return naive.replace(tzinfo=wechat.BEIJING)


def apply_payment(out_trade_no: str, transaction_id: str, total_fee: int, paid_at: datetime) -> str:
    """Credit a verified payment once: APPLIED the first time, DUPLICATE afterwards.

    Raises UnknownOrder, or AmountMismatch (nothing applied) when WeChat's total_fee is not
    the order's amount.
    """
    try:
        with transaction.atomic():
            # Locks the order and its user (PostgreSQL locks every joined row).
            order = (RechargeOrder.objects.select_for_update().select_related("user")
                     .filter(out_trade_no=out_trade_no).first())
            if order is None:
                raise UnknownOrder(out_trade_no)
            if order.is_settled:
                if order.transaction_id != transaction_id:
                    logger.error("order %s paid as %s, now reported as %s", out_trade_no, order.transaction_id,
                                 transaction_id)
                return DUPLICATE
            if total_fee != order.amount:
                raise AmountMismatch(f"WeChat reports {total_fee} fen, the order is {order.amount} fen")
            order.mark_paid(transaction_id, paid_at)
            order.user.credit(order.amount, LedgerEntry.Kind.RECHARGE, order=order)
    except IntegrityError:
        # Lost a race that the row lock could not prevent (SQLite): the winner credited it.
        if RechargeOrder.objects.filter(out_trade_no=out_trade_no, transaction_id__isnull=False).exists():
            return DUPLICATE
        raise
    return APPLIED


def close_order_locally(order: RechargeOrder) -> None:
    with transaction.atomic():
        locked = RechargeOrder.objects.select_for_update().get(pk=order.pk)
        if locked.status == RechargeOrder.Status.PENDING:
            locked.close()


def sync_order(order: RechargeOrder) -> RechargeOrder:
    """Ask WeChat (orderquery) about a pending order and apply what it says."""
    if order.status != RechargeOrder.Status.PENDING:
        return order
    try:
        answer = wechat.Pay.for_channel(order.channel).query_order(order.out_trade_no)
    except wechat.WeChatError as exc:
        if exc.code == "ORDERNOTEXIST" and order.expires_at <= timezone.now():
            close_order_locally(order)  # never reached WeChat and can no longer be paid
            order.refresh_from_db()
            return order
        raise
    state = answer.get("trade_state")
    if state == "SUCCESS":
        if not answer.get("transaction_id") or not answer.get("total_fee", "").isdigit():
            logger.error("orderquery %s says SUCCESS without transaction_id or total_fee", order.out_trade_no)
            return order
        try:
            apply_payment(order.out_trade_no, answer["transaction_id"], int(answer["total_fee"]),
                          _parse_time_end(answer.get("time_end")))
        except AmountMismatch as exc:
            logger.error("INCIDENT orderquery %s: %s", order.out_trade_no, exc)
    elif state in ("CLOSED", "REVOKED", "PAYERROR"):
        close_order_locally(order)
    order.refresh_from_db()
    return order


# -- notifies --------------------------------------------------------------------------------

def _finish(log: Notification, outcome: str, detail: str = "", **fields) -> None:
    try:
        Notification.objects.filter(pk=log.pk).update(outcome=outcome, detail=detail[:2000], **fields)
    except DatabaseError:
        logger.exception("could not record the outcome of notify %s", log.pk)


def handle_payment_notify(body: bytes, remote_addr: str | None) -> bool:
    """Record, verify and apply a payment notify. True: answer SUCCESS; False: FAIL (retry)."""
    log = Notification.objects.create(kind=Notification.Kind.PAYMENT, raw_body=body.decode("utf-8", "replace"),
                                      remote_addr=remote_addr)
    try:
        fields = wechat.parse_payment_notify(body)
    except wechat.NotifyError as exc:
        logger.warning("payment notify %s rejected: %s", log.pk, exc)
        _finish(log, Notification.Outcome.REJECTED, str(exc), signature_valid=exc.signature_valid)
        return False
    out_trade_no = fields.get("out_trade_no", "")[:64]
    if fields.get("return_code") != "SUCCESS" or fields.get("result_code") != "SUCCESS":
        _finish(log, Notification.Outcome.IGNORED, f"result_code={fields.get('result_code')}",
                signature_valid=True, out_trade_no=out_trade_no)
        return True
    if not (out_trade_no and fields.get("transaction_id") and fields.get("total_fee", "").isdigit()):
        _finish(log, Notification.Outcome.REJECTED, "missing out_trade_no, transaction_id or total_fee",
                signature_valid=True, out_trade_no=out_trade_no)
        return False
    try:
        outcome = apply_payment(out_trade_no, fields["transaction_id"], int(fields["total_fee"]),
                                _parse_time_end(fields.get("time_end")))
    except UnknownOrder:
        logger.error("payment notify %s for unknown order %s", log.pk, out_trade_no)
        _finish(log, Notification.Outcome.REJECTED, "unknown out_trade_no", signature_valid=True, out_trade_no=out_trade_no)
        return False
    except AmountMismatch as exc:
        logger.error("INCIDENT payment notify %s for %s: %s", log.pk, out_trade_no, exc)
        _finish(log, Notification.Outcome.INCIDENT, str(exc), signature_valid=True, out_trade_no=out_trade_no)
        return False
    except DatabaseError as exc:
        logger.exception("payment notify %s for %s could not be applied", log.pk, out_trade_no)
        _finish(log, Notification.Outcome.ERROR, f"{exc.__class__.__name__}: {exc}", signature_valid=True,
                out_trade_no=out_trade_no)
        return False
    _finish(log, outcome, signature_valid=True, out_trade_no=out_trade_no)
    return True

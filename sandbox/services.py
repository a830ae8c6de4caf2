"""What happens on WeChat's side: trades are paid, refunds settle, notifies are queued."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sandbox.merchants import merchant
from sandbox.models import AuthCode, Delivery, Fault, Refund, Trade
from wxrecharge import wxpay

logger = logging.getLogger(__name__)

BEIJING = timezone.get_fixed_timezone(8 * 60)
PREPAY_TTL = timedelta(hours=2)
CODE_TTL = timedelta(minutes=5)
# WeChat accepts a refund at once and settles it later; here after 2s times
# SANDBOX_NOTIFY_TIME_SCALE, never under 0.05s so that "PROCESSING" can be seen.
REFUND_SETTLE_SECONDS = 2.0
REFUND_SETTLE_MIN_SECONDS = 0.05


class CashierError(Exception):
    """The payment sheet fails with this text, as WeChat's client would show it."""


def beijing(dt, fmt: str = "%Y%m%d%H%M%S") -> str:
    return dt.astimezone(BEIJING).strftime(fmt)


def new_prepay_id() -> str:
    return "wx" + beijing(timezone.now()) + secrets.token_hex(11)


def new_transaction_id() -> str:
    return "4200" + beijing(timezone.now(), "%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(16))


def new_refund_id() -> str:
    return "5030" + beijing(timezone.now(), "%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(16))


def openid_for(appid: str, browser_id: str) -> str:
    """A stable test openid for one browser and one app (openids are per appid)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{appid}:{browser_id}".encode(), hashlib.sha256).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def mint_code(kind: str, appid: str, openid: str, scope: str = "") -> AuthCode:
    """A single-use code that expires in 5 minutes (网页授权 or wx.login)."""
    return AuthCode.objects.create(
        code=secrets.token_urlsafe(24), kind=kind, appid=appid, openid=openid, scope=scope,
        expires_at=timezone.now() + CODE_TTL,
    )


# --- notifies ---------------------------------------------------------------------------

def _reported_fee(trade: Trade, fault: Fault) -> int:
    return fault.report_total_fee if fault.report_total_fee is not None else trade.total_fee


def trade_fields(trade: Trade, fault: Fault) -> dict[str, str]:
    """What WeChat reports of a paid trade (orderquery and the payment notify)."""
    fee = str(_reported_fee(trade, fault))
    fields = {
        "openid": trade.openid, "is_subscribe": "N", "trade_type": trade.trade_type, "bank_type": "CMC",
        "total_fee": fee, "cash_fee": fee, "fee_type": "CNY", "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no, "attach": trade.attach, "time_end": beijing(trade.time_end),
    }
    return {k: v for k, v in fields.items() if v}


def corrupted(sign: str) -> str:
    """A signature one character off: what the 通知与查询签名错误 switch sends."""
    return ("0" if sign[0] != "0" else "1") + sign[1:]


def signed(fields: dict[str, str], trade: Trade, fault: Fault) -> dict[str, str]:
    key = merchant(trade.mch_id).api_key
    fields = {k: v for k, v in fields.items() if v not in ("", None)}
    fields["sign"] = wxpay.sign(fields, key, trade.sign_type)
    if fault.corrupt_signature:
        fields["sign"] = corrupted(fields["sign"])
    return fields


def payment_notify_body(trade: Trade, fault: Fault) -> str:
    fields = {
        "return_code": "SUCCESS", "return_msg": "OK", "appid": trade.appid, "mch_id": trade.mch_id,
        "nonce_str": wxpay.nonce(), "result_code": "SUCCESS",
        "sign_type": trade.sign_type if trade.sign_type != wxpay.MD5 else "",
        **trade_fields(trade, fault),
    }
    return wxpay.to_xml(signed(fields, trade, fault))


def refund_notify_body(refund: Refund) -> str:
    trade = refund.trade
    key = merchant(trade.mch_id).api_key
    info = {
        "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no, "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no, "total_fee": str(trade.total_fee), "refund_fee": str(refund.refund_fee),
        "settlement_refund_fee": str(refund.refund_fee), "refund_status": refund.state,
        "success_time": beijing(refund.success_time, "%Y-%m-%d %H:%M:%S") if refund.success_time else "",
        "refund_recv_accout": "支付用户的零钱", "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }
    info = {k: v for k, v in info.items() if v}  # no success_time unless it succeeded
    fields = {"return_code": "SUCCESS", "appid": trade.appid, "mch_id": trade.mch_id, "nonce_str": wxpay.nonce(),
              "req_info": wxpay.encrypt_req_info(wxpay.to_xml(info, root="root"), key)}
    return wxpay.to_xml(fields)


def queue_notify(trade: Trade, kind: str, body: str, fault: Fault, url: str, refund: Refund | None = None) -> Delivery | None:
    """Queue a notify for the delivery worker (sent after the transaction commits)."""
    if not url:
        return None
    delivery = Delivery.objects.create(
        kind=kind, trade=trade, refund=refund, url=url, body=body, duplicate=fault.duplicate_notifies,
        next_attempt_at=timezone.now() + timedelta(seconds=fault.notify_delay_seconds),
    )
    from sandbox import worker

    transaction.on_commit(worker.wake)
    return delivery


# --- state changes ------------------------------------------------------------------------

def pay(prepay_id: str, appid: str) -> str:
    """The user pays in the cashier. Returns the trade state reached; raises CashierError."""
    with transaction.atomic():
        trade = Trade.objects.select_for_update().filter(prepay_id=prepay_id).first()
        now = timezone.now()
        if trade is None or trade.prepay_expires_at <= now:
            raise CashierError("prepay_id 已失效，请重新下单")
        if trade.appid != appid:
            raise CashierError("appId 与下单时不一致")
        if trade.is_paid:
            raise CashierError("该订单已支付，请勿重复支付")
        if trade.state not in (Trade.NOTPAY, Trade.USERPAYING):
            raise CashierError("订单已关闭" if trade.state == Trade.CLOSED else "订单状态异常，支付失败")
        if trade.time_expire and trade.time_expire <= now:
            raise CashierError("订单已过期")
        fault = Fault.effective(trade.out_trade_no)
        if fault.end_state in (Trade.PAYERROR, Trade.USERPAYING):
            trade.state = fault.end_state
            trade.save(update_fields=["state"])
            return trade.state
        trade.state = Trade.SUCCESS
        trade.transaction_id = new_transaction_id()
        trade.time_end = now
        trade.save(update_fields=["state", "transaction_id", "time_end"])
        queue_notify(trade, Delivery.PAYMENT, payment_notify_body(trade, fault), fault, trade.notify_url)
        return trade.state


def refund_settle_delay() -> timedelta:
    return timedelta(seconds=max(REFUND_SETTLE_MIN_SECONDS, REFUND_SETTLE_SECONDS * settings.SANDBOX_NOTIFY_TIME_SCALE))


def settle_refund(refund_pk: int) -> Refund | None:
    """WeChat settles a PROCESSING refund and queues its notify. Returns the refund if this
    call settled it, None if it was settled already (by the worker or a refundquery).

    The outcome comes from the fault switch `end_state`: REFUNDCLOSE gives the amount back
    to the trade (a closed refund moved no money); CHANGE keeps it spent, as WeChat does
    (the money left and the merchant finishes the refund by hand on its platform).
    """
    refund = Refund.objects.select_related("trade").get(pk=refund_pk)
    if refund.state != Refund.PROCESSING:
        return None
    fault = Fault.effective(refund.trade.out_trade_no)
    outcome = fault.end_state if fault.end_state in (Refund.REFUNDCLOSE, Refund.CHANGE) else Refund.SUCCESS
    with transaction.atomic():
        # The claim is a guarded UPDATE under the refund's row lock: only one caller (the
        # worker or a refundquery) gets a row back, whoever comes second finds it settled.
        claimed = Refund.objects.filter(pk=refund_pk, state=Refund.PROCESSING).update(
            state=outcome, success_time=timezone.now() if outcome == Refund.SUCCESS else None,
        )
        if not claimed:
            return None
        if outcome == Refund.REFUNDCLOSE:
            trades = Trade.objects.filter(pk=refund.trade_id)
            trades.update(refunded_fee=F("refunded_fee") - refund.refund_fee)
            # Nothing else refunded (or under way): the trade is plainly paid again.
            trades.filter(state=Trade.REFUND, refunded_fee=0).update(state=Trade.SUCCESS)
        refund = Refund.objects.select_related("trade").get(pk=refund_pk)
        queue_notify(refund.trade, Delivery.REFUND, refund_notify_body(refund), fault, refund.notify_url, refund=refund)
    logger.info("sandbox refund %s settled: %s", refund.out_refund_no, refund.state)
    return refund


def settle_due_refunds(limit: int = 100) -> int:
    """Settle every PROCESSING refund whose time has come; returns how many this call settled.

    One refund that fails is logged and left PROCESSING for the next round.
    """
    due = Refund.objects.filter(state=Refund.PROCESSING, settle_at__lte=timezone.now()).order_by("settle_at")
    settled = 0
    for pk in list(due.values_list("pk", flat=True)[:limit]):
        try:
            if settle_refund(pk) is not None:
                settled += 1
        except Exception:
            logger.exception("sandbox refund %s could not be settled; retrying later", pk)
    return settled

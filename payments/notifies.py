"""WeChat Pay's notifies, in one place: record first (Notification.record), then verify and
parse through the payment interface, apply through the flows (payments/services.py), and
write the outcome on the record; the views answer WeChat from what this says
(docs/architecture.md#how-a-notify-flows).

A notify that was recorded is never lost: one whose processing failed keeps its error and
traceback, WeChat sends it again, sweep_orders processes notifies a crash left 已接收,
and the admin's 重新处理 runs `process` again (nothing is applied twice).
"""

from __future__ import annotations

import logging
import traceback

from django.utils import timezone

from common.money import format_fen
from orders.models import AmountMismatch, Refund, UnknownOrder
from payments import services
from payments.models import Incident, Notification
from payments.providers import provider, provider_class
from payments.providers.base import Notify, NotifyError, Received

logger = logging.getLogger(__name__)


def receive_notify(
    kind: str, body: bytes, remote_addr: str | None, api: str = "v2", headers: dict[str, str] | None = None
) -> Received:
    """Record a notify, then process it: the record (None when it could not even be
    recorded, so WeChat must send it again) and whether WeChat may stop sending it."""
    try:
        log = Notification.record(kind, body, remote_addr, api=api, headers=headers)
    except Exception:  # nothing recorded: WeChat must send it again
        logger.exception("a %s notify could not be recorded; asking WeChat to send it again", kind)
        return Received(None, acknowledged=False)
    return Received(log, acknowledged=process(log))


def process(log: Notification) -> bool:
    """Verify and apply a recorded notify. True: answer WeChat SUCCESS; False: FAIL, so it retries.

    Whatever goes wrong stays on the record, with its traceback, for the admin's
    "process again" action.
    """
    handler = process_payment_notify if log.kind == Notification.Kind.PAYMENT else process_refund_notify
    try:
        return handler(log)
    except Exception as exc:  # kept on the record; WeChat retries
        logger.exception("notify %s could not be processed", log.pk)
        try:
            log.finish(Notification.Outcome.ERROR, f"{exc.__class__.__name__}: {exc}", traceback=traceback.format_exc())
        except Exception:  # the database itself may be what failed
            logger.exception("could not record the failure of notify %s", log.pk)
        return False


def _parse(log: Notification) -> Notify | bool:
    """The verified content of a recorded notify, the log naming its order and refund; or,
    after recording why it was rejected, the answer for WeChat (True: received, since
    sending it again cannot help)."""
    try:
        # The notify's own provider (its URL said which): an order placed under v2 settles by its
        # v2 notify after a switch to v3.
        notify = provider(api=log.api).parse_notify(log.kind, log.body, log.headers, log.received_at)
    except NotifyError as exc:
        (logger.error if exc.signature_valid else logger.warning)("%s notify %s rejected: %s", log.kind, log.pk, exc)
        log.names(exc.out_trade_no, exc.out_refund_no)  # what a verified notify for another merchant carries
        log.finish(Notification.Outcome.REJECTED, str(exc), signature_valid=exc.signature_valid)
        return _acknowledge_refused(log) and not exc.retry
    if notify.refund is not None:
        log.names(notify.refund.out_trade_no, notify.refund.out_refund_no)
    elif notify.trade is not None:
        log.names(notify.trade.out_trade_no)
    return notify


def _acknowledge_refused(log: Notification) -> bool:
    """A verified notify that could not be applied and that a retry cannot change (an
    incident is open, or it names another merchant): v3 tells WeChat it was received, so it
    stops sending, if its provider answers so (Provider.ACKNOWLEDGES_REFUSED)."""
    return provider_class(log.api).ACKNOWLEDGES_REFUSED


def process_payment_notify(log: Notification) -> bool:
    """Verify and apply a recorded payment notify (`process` calls this)."""
    notify = _parse(log)
    if isinstance(notify, bool):
        return notify
    trade = notify.trade
    assert trade is not None  # a payment notify carries its trade
    out_trade_no = trade.out_trade_no
    if notify.ignore:
        log.finish(Notification.Outcome.IGNORED, notify.ignore, signature_valid=True)
        return True
    if not (out_trade_no and trade.transaction_id and trade.total is not None):
        amount_field = "amount.total" if log.api == "v3" else "total_fee"
        log.finish(
            Notification.Outcome.REJECTED, f"缺少或无效的 out_trade_no、transaction_id 或 {amount_field}", signature_valid=True
        )
        return _acknowledge_refused(log)
    try:
        payment = services.apply_payment(
            out_trade_no, trade.transaction_id, trade.total, trade.paid_at or timezone.now(), log=log
        )
    except UnknownOrder:
        incident = Incident.report(
            Incident.Kind.UNKNOWN_ORDER,
            f"收到未知订单 {out_trade_no} 的支付通知（¥{format_fen(trade.total)}，{trade.transaction_id}）",
            out_trade_no=out_trade_no,
        )
        log.finish(Notification.Outcome.INCIDENT, "未知订单", signature_valid=True, incident=incident)
        return _acknowledge_refused(log)
    except AmountMismatch as exc:
        log.finish(Notification.Outcome.INCIDENT, str(exc), signature_valid=True)
        return _acknowledge_refused(log)
    logger.info("payment notify %s for %s: %s", log.pk, out_trade_no, payment.outcome)
    return True


def process_refund_notify(log: Notification) -> bool:
    """Decrypt and apply a recorded refund notify (`process` calls this)."""
    notify = _parse(log)
    if isinstance(notify, bool):
        return notify
    info = notify.refund
    assert info is not None  # a refund notify carries its refund
    out_trade_no, out_refund_no, state = info.out_trade_no, info.out_refund_no, info.wechat_state
    refund = Refund.objects.select_related("order").filter(out_refund_no=out_refund_no).first()
    if refund is None or refund.order.out_trade_no != out_trade_no:
        incident = Incident.report(
            Incident.Kind.UNKNOWN_REFUND,
            f"收到未知退款 {out_refund_no}（订单 {out_trade_no}）的退款通知，状态 {state}",
            out_trade_no=out_trade_no,
        )
        log.finish(Notification.Outcome.INCIDENT, "未知退款", signature_valid=True, incident=incident)
        return _acknowledge_refused(log)
    if info.state is None or not info.is_final:
        log.finish(Notification.Outcome.REJECTED, f"refund_status={state}", signature_valid=True)
        return _acknowledge_refused(log)
    if info.amount != refund.amount:
        incident = Incident.report(
            Incident.Kind.REFUND_CONFLICT,
            f"退款 {out_refund_no} 金额 ¥{refund.amount_yuan}，微信报告 "
            f"{'?' if info.amount is None else format_fen(info.amount)}；未处理",
            order=refund.order,
            refund=refund,
        )
        log.finish(Notification.Outcome.INCIDENT, "退款金额不符", signature_valid=True, incident=incident)
        return _acknowledge_refused(log)
    done = services.settle_refund(refund, info.state, info.refund_id, info.settled_at, log=log, wechat_state=state)
    outcome = done.outcome
    logger.info("refund notify %s for %s: %s %s", log.pk, out_refund_no, state, outcome)
    return True

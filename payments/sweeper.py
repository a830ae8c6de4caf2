"""`sweep_orders`: every order reaches an end, every refund an outcome.

One pass: pending orders older than a minute are asked about (orderquery) and settled as
a notify would be; orders past their time_expire are closed at WeChat (closeorder) and
here; refunds still 处理中 are sent again (same out_refund_no) or asked about
(refundquery), and a 退款异常 is asked about hourly until WeChat says it was resolved;
notifies left 已接收 by a crash are processed again; rejected notifies past their retention
are purged.

Several runners may work at once (several servers, a timer and a loop): each order and
refund is claimed by compare-and-set on its `synced_at` before WeChat is called, so no
two runners handle it in the same interval; every change itself is a locked model method.
A runner killed in the middle leaves nothing half-done: its claims simply expire.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from common import housekeeping
from orders.models import RechargeOrder, Refund
from payments import notifies, services
from payments.models import Notification

logger = logging.getLogger(__name__)

# An order this young is still being paid: its notify will most likely come.
PENDING_GRACE = timedelta(minutes=1)
# A refund's notify usually comes within this; only then ask.
REFUND_GRACE = timedelta(seconds=30)
# A runner that claimed an order has this long before another may take it.
CLAIM_INTERVAL = timedelta(seconds=30)
# A 退款异常 (CHANGE) waits for the merchant to act in WeChat's merchant platform: ask about it
# this often, until WeChat says SUCCESS.
ABNORMAL_REFUND_INTERVAL = timedelta(hours=1)
# A notify still 已接收 after this was interrupted (the process died): process it again.
STUCK_NOTIFY = timedelta(minutes=5)
BATCH = 500


@dataclass
class PassResult:
    synced: int = 0
    closed: int = 0
    refunds_settled: int = 0
    notifies_reprocessed: int = 0
    purged: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return (
            f"synced {self.synced}, closed {self.closed}, refunds settled {self.refunds_settled}, "
            f"failed {self.failed}, notifies reprocessed {self.notifies_reprocessed}, purged {self.purged}"
        )


def run_pass(limit: int = BATCH) -> PassResult:
    """One pass over everything that has not reached its end. Never raises for one bad item."""
    result = PassResult()
    _orders(result, limit)
    _refunds(result, limit)
    _stuck_notifies(result, limit)
    result.purged = purge_rejected_notifies() + sum(housekeeping.purge_all().values())
    logger.info("sweep_orders: %s", result)
    return result


def _orders(result: PassResult, limit: int) -> None:
    now = timezone.now()
    due = (
        RechargeOrder.objects.filter(status=RechargeOrder.Status.PENDING, created_at__lte=now - PENDING_GRACE)
        .filter(Q(synced_at__isnull=True) | Q(synced_at__lte=now - CLAIM_INTERVAL))
        .order_by("created_at")[:limit]
    )
    for order in due:
        if not order.claim_sync(CLAIM_INTERVAL):
            continue  # another runner (or a page's status poll) has it
        try:
            if order.expires_at <= timezone.now():
                order = services.close_order(order)
                if order.status == RechargeOrder.Status.CLOSED:
                    result.closed += 1
                else:
                    result.synced += 1
            else:
                services.sync_order(order)
                result.synced += 1
        except Exception:  # one failing order must not stop the others
            logger.exception("sweep_orders: order %s failed", order.out_trade_no)
            result.failed += 1


def _refunds(result: PassResult, limit: int) -> None:
    now = timezone.now()
    processing = (
        Q(status=Refund.Status.PROCESSING)
        & (Q(accepted=False) | Q(created_at__lte=now - REFUND_GRACE))
        & (Q(synced_at__isnull=True) | Q(synced_at__lte=now - CLAIM_INTERVAL))
    )
    abnormal = Q(status=Refund.Status.ABNORMAL) & (Q(synced_at__isnull=True) | Q(synced_at__lte=now - ABNORMAL_REFUND_INTERVAL))
    due = Refund.objects.select_related("order").filter(processing | abnormal).order_by("created_at")[:limit]
    for refund in due:
        interval = ABNORMAL_REFUND_INTERVAL if refund.status == Refund.Status.ABNORMAL else CLAIM_INTERVAL
        if not refund.claim_sync(interval):
            continue
        before = refund.status
        try:
            if services.sync_refund(refund).status != before:
                result.refunds_settled += 1
        except Exception:  # one failing refund must not stop the others
            logger.exception("sweep_orders: refund %s failed", refund.out_refund_no)
            result.failed += 1


def _stuck_notifies(result: PassResult, limit: int) -> None:
    cutoff = timezone.now() - STUCK_NOTIFY
    for log in Notification.objects.filter(
        outcome=Notification.Outcome.RECEIVED, received_at__lte=cutoff, processed_at__isnull=True
    ).order_by("received_at")[:limit]:
        # Claim it: only one runner processes it again.
        if not Notification.objects.filter(pk=log.pk, processed_at__isnull=True).update(processed_at=timezone.now()):
            continue
        try:
            notifies.process(log)
            result.notifies_reprocessed += 1
        except Exception:
            logger.exception("sweep_orders: notify %s failed", log.pk)
            result.failed += 1


def purge_rejected_notifies() -> int:
    """Delete rejected notifies (bad signature, bad XML) older than NOTIFY_LOG_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.NOTIFY_LOG_RETENTION_DAYS)
    deleted, _ = Notification.objects.filter(
        outcome=Notification.Outcome.REJECTED, received_at__lt=cutoff, incident__isnull=True
    ).delete()
    return deleted

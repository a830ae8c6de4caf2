"""Notify delivery: POST each queued notify, retry on WeChat's schedule until SUCCESS.

Each round first settles the refunds that are due (WeChat settles refunds after it has
answered 申请退款), which queues their refund notifies for the same round.

Deliveries live in the database, so a restart resumes them; several workers may run at
once (rows are claimed under a row lock, skipping locked ones).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sandbox.models import Attempt, Delivery, Fault
from sandbox.services import settle_due_refunds
from wxrecharge import wxpay

logger = logging.getLogger(__name__)

# WeChat's retry intervals after the first attempt: 15s, 15s, 30s, 3m, ... (24h4m in all).
SCHEDULE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600)
CLAIM_SECONDS = 60
TIMEOUT_SECONDS = 5


def retry_delay(attempts_made: int) -> timedelta | None:
    """Wait before the next attempt after `attempts_made` attempts, scaled; None: give up."""
    if attempts_made > len(SCHEDULE):
        return None
    return timedelta(seconds=SCHEDULE[attempts_made - 1] * settings.SANDBOX_NOTIFY_TIME_SCALE)


def deliver_due(limit: int = 20) -> int:
    """Settle the refunds that are due, then attempt every delivery that is due now;
    returns how many deliveries were attempted."""
    settle_due_refunds()
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(state=Delivery.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:limit]
        )
        # Claim them, so that another worker leaves them alone while we post.
        Delivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
    for delivery in due:
        attempt(delivery)
    return len(due)


def _take_drop(out_trade_no: str) -> bool:
    """Use up one 'drop the next N notifies' from the switches in force for this trade."""
    fault = Fault.effective(out_trade_no)
    if fault.pk is None or fault.drop_notifies == 0:
        return False
    return bool(Fault.objects.filter(pk=fault.pk, drop_notifies__gt=0).update(drop_notifies=F("drop_notifies") - 1))


def _post(delivery: Delivery) -> tuple[int | None, str, bool]:
    try:
        response = requests.post(delivery.url, data=delivery.body.encode("utf-8"),
                                 headers={"Content-Type": "text/xml", "User-Agent": "Mozilla/4.0 (sandbox WeChat Pay)"},
                                 timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:500], False
    answer = response.text[:2000]
    try:
        ok = response.status_code == 200 and wxpay.parse_xml(response.content).get("return_code") == "SUCCESS"
    except wxpay.XMLError:
        ok = False
    return response.status_code, answer, ok


def attempt(delivery: Delivery) -> bool:
    """One attempt (two POSTs with the 'send twice' switch); records it and schedules the next."""
    if _take_drop(delivery.trade.out_trade_no):
        status, answer, ok, outcome = None, "", False, "dropped"
    else:
        status, answer, ok = _post(delivery)
        if delivery.duplicate:
            second = _post(delivery)
            Attempt.objects.create(delivery=delivery, status_code=second[0], answer=second[1],
                                   outcome="duplicate")
        outcome = "success" if ok else ("error" if status is None else "fail")
    Attempt.objects.create(delivery=delivery, status_code=status, answer=answer, outcome=outcome)
    delivery.attempts += 1
    if ok:
        delivery.state = Delivery.DELIVERED
    else:
        delay = retry_delay(delivery.attempts)
        if delay is None:
            delivery.state = Delivery.GAVE_UP
        else:
            delivery.next_attempt_at = timezone.now() + delay
    delivery.save(update_fields=["attempts", "state", "next_attempt_at"])
    logger.info("sandbox notify %s %s attempt %d: %s", delivery.kind, delivery.trade.out_trade_no, delivery.attempts, outcome)
    return ok

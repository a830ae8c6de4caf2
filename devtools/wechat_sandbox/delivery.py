"""Notify delivery: POST each queued notify, retry on WeChat's schedule until received.

A v2 notify is received when the merchant answers XML with return_code SUCCESS. A v3
notify is received when the merchant answers any 2xx: the HTTP status decides (a 200
whose body says FAIL is received; 4xx/5xx are retried). Each v3 attempt posts the stored
body bytes with headers signed afresh (new Wechatpay-Timestamp, nonce and signature, so
a retry hours later still passes the merchant's 5-minute window), under the switches in
force at that moment (v3_notify_signature, corrupt_signature). A signature probe that the
merchant answers with a 2xx ends the delivery as WeChat's would, recorded as
"probe_accepted": the merchant took a notify whose signature does not verify.

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

from devtools.wechat_sandbox.models import V3, Attempt, Delivery, Fault
from devtools.wechat_sandbox.services import settle_due_refunds, v3_notify_headers
from devtools.wechat_sandbox.v3sign import PROBE_PREFIX
from wxproto import v2 as wxpay

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


USER_AGENT = "Mozilla/4.0 (sandbox WeChat Pay)"


def _send(url: str, body: bytes, headers: dict[str, str]) -> tuple[requests.Response | None, str]:
    try:
        response = requests.post(url, data=body, headers={"User-Agent": USER_AGENT, **headers}, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return None, f"{exc.__class__.__name__}: {exc}"[:500]
    return response, response.text[:2000]


def _post(delivery: Delivery, headers: dict[str, str]) -> tuple[int | None, str, bool]:
    if delivery.api_version == V3:
        response, answer = _send(delivery.url, delivery.body.encode("utf-8"), headers)
        return (None, answer, False) if response is None else (response.status_code, answer, 200 <= response.status_code < 300)
    response, answer = _send(delivery.url, delivery.body.encode("utf-8"), {"Content-Type": "text/xml"})
    if response is None:
        return None, answer, False
    try:
        ok = response.status_code == 200 and wxpay.parse_xml(response.content).get("return_code") == "SUCCESS"
    except wxpay.XMLError:
        ok = False
    return response.status_code, answer, ok


def _v3_headers(delivery: Delivery) -> dict[str, str]:
    """Sign this attempt of a v3 notify now, and keep the headers on the delivery."""
    fault = Fault.effective(delivery.trade.out_trade_no)
    # A probe goes out once, on the first attempt that reaches the merchant (not one
    # dropped by a switch, nor one that found no server).
    first_sent = not delivery.attempt_log.filter(status_code__isnull=False).exists()
    delivery.headers = v3_notify_headers(delivery.body, fault, first_sent=first_sent)
    return delivery.headers


def attempt(delivery: Delivery) -> bool:
    """One attempt (two POSTs with the 'send twice' switch); records it and schedules the next."""
    headers: dict[str, str] = {}
    if _take_drop(delivery.trade.out_trade_no):
        status, answer, ok, outcome = None, "", False, "dropped"
    else:
        headers = _v3_headers(delivery) if delivery.api_version == V3 else {}
        status, answer, ok = _post(delivery, headers)
        if delivery.duplicate:
            second = _post(delivery, headers)
            Attempt.objects.create(
                delivery=delivery, status_code=second[0], answer=second[1], outcome="duplicate", headers=headers
            )
        outcome = "success" if ok else ("error" if status is None else "fail")
        if ok and headers.get("Wechatpay-Signature", "").startswith(PROBE_PREFIX):
            outcome = "probe_accepted"
    Attempt.objects.create(delivery=delivery, status_code=status, answer=answer, outcome=outcome, headers=headers)
    delivery.attempts += 1
    if ok:
        delivery.state = Delivery.DELIVERED
    else:
        delay = retry_delay(delivery.attempts)
        if delay is None:
            delivery.state = Delivery.GAVE_UP
        else:
            delivery.next_attempt_at = timezone.now() + delay
    delivery.save(update_fields=["attempts", "state", "next_attempt_at", "headers"])
    logger.info("sandbox notify %s %s attempt %d: %s", delivery.kind, delivery.trade.out_trade_no, delivery.attempts, outcome)
    return ok

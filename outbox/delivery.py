"""Delivering the outbox to the merchant's webhook endpoints (docs/webhooks.md).

A pass: fan new events out to the endpoints subscribed to them (`dispatch`), take the
deliveries that are due (`claim`: rows locked with SKIP LOCKED and held for a while, so any
number of runners share the work without overlap, and a runner that dies lets go), and POST
each, signed the Standard Webhooks way, with a short timeout and no redirects (`deliver`).
A 2xx is delivered; anything else is retried on RETRY_SCHEDULE, then failed. No transaction
is open while an endpoint is being called.

In production an endpoint must be https and every address its name resolves to must be a
public one; the name is resolved at each delivery and the connection goes to the address
that was checked, so DNS cannot slip a private address in between.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outbox.models import RETRY_SCHEDULE, Attempt, Delivery, Event, WebhookEndpoint
from wxproto.beijing import BEIJING

logger = logging.getLogger(__name__)

BATCH = 50
ANSWER_KEPT = 500


class Refused(Exception):
    """The endpoint may not be called (not https, or a private address in production)."""


def sign(key: bytes, event_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' signature: base64 of HMAC-SHA256 over "id.timestamp.body"."""
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(event: Event) -> bytes:
    payload = {
        "type": event.type,
        "timestamp": timezone.localtime(event.created_at, BEIJING).isoformat(timespec="seconds"),
        "data": event.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# -- a pass ------------------------------------------------------------------------------------


def dispatch(limit: int = 500) -> int:
    """Make the deliveries of events not yet dispatched; how many events it took."""
    now = timezone.now()
    with transaction.atomic():
        events = list(Event.objects.select_for_update(skip_locked=True).filter(dispatched_at__isnull=True).order_by("pk")[:limit])
        if not events:
            return 0
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True))
        Delivery.objects.bulk_create(
            [
                Delivery(event=event, endpoint=endpoint, next_attempt_at=now)
                for event in events
                for endpoint in endpoints
                if event.type in endpoint.events and event.created_at >= endpoint.created_at
            ],
            ignore_conflicts=True,
        )
        Event.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    return len(events)


def claim(limit: int = BATCH) -> list[Delivery]:
    """Take up to `limit` due deliveries for this runner, held long enough to try them all."""
    now = timezone.now()
    hold = timedelta(seconds=(settings.WEBHOOK_TIMEOUT_SECONDS + 1) * limit + 30)
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(claimed_until=now + hold)
    return list(Delivery.objects.filter(pk__in=ids).select_related("event", "endpoint").order_by("next_attempt_at", "pk"))


def run_pass(stop: threading.Event | None = None) -> int:
    """Dispatch, then deliver what is due; how many deliveries were tried."""
    dispatch()
    tried = 0
    for delivery in claim():
        if stop is not None and stop.is_set():
            break  # the rest are released when their hold ends
        deliver(delivery)
        tried += 1
    return tried


# -- one delivery ------------------------------------------------------------------------------


def deliver(delivery: Delivery) -> bool:
    """POST it once and record how it went; True when the endpoint took it (2xx)."""
    event, endpoint = delivery.event, delivery.endpoint
    body = body_of(event)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "wxrecharge-webhooks/1",
        "webhook-id": event.event_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": sign(endpoint.key, event.event_id, timestamp, body),
    }
    started = time.monotonic()
    status, answer, error = None, "", ""
    try:
        status, answer = post(endpoint.url, body, headers)
    except Refused as exc:
        error = f"已拒绝：{exc}"
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:300]
    duration = int((time.monotonic() - started) * 1000)
    ok = status is not None and 200 <= status < 300
    now = timezone.now()
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery, attempted_at=now, status_code=status, answer=answer, error=error, duration_ms=duration
        )
        attempts = delivery.attempts + 1
        fields = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": status,
            "last_error": error or ("" if ok else f"HTTP {status}"),
            "claimed_until": None,
        }
        if ok:
            fields.update(status=Delivery.Status.SUCCEEDED, delivered_at=now)
        elif attempts > len(RETRY_SCHEDULE):
            fields.update(status=Delivery.Status.FAILED)
            logger.warning("webhook %s to %s failed after %s attempts", event.event_id, endpoint.pk, attempts)
        else:
            fields.update(next_attempt_at=now + RETRY_SCHEDULE[attempts - 1])
        # Only while it is still this runner's (an operator's resend meanwhile wins).
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING, attempts=delivery.attempts).update(**fields)
    return ok


def _addresses(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST to `url` at an address checked now; (status, the start of the answer). No redirect
    is followed (a 3xx is an answer like any other that is not 2xx)."""
    parts = urlsplit(url)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise Refused("只能推送到 https 地址")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(host, port)
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global:
                raise Refused(f"{host} 解析到内网或本机地址 {address}")
    timeout = urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT_SECONDS, read=settings.WEBHOOK_TIMEOUT_SECONDS)
    if parts.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            addresses[0],
            port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            timeout=timeout,
            retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(addresses[0], port, timeout=timeout, retries=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            "POST", path, body=body, headers={**headers, "Host": parts.netloc}, redirect=False, preload_content=False
        )
        try:
            answer = response.read(ANSWER_KEPT * 4, decode_content=False)[: ANSWER_KEPT * 4]
        finally:
            response.release_conn()
        return response.status, answer.decode("utf-8", "replace")[:ANSWER_KEPT]
    finally:
        pool.close()

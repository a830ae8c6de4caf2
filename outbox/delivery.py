"""Delivering the outbox to the merchant's webhook endpoints (docs/webhooks.md).

A pass: fan new events out to the endpoints subscribed to them (`dispatch`), take the
deliveries that are due (`claim`: rows locked with SKIP LOCKED and held for a while, so any
number of runners share the work without overlap, and a runner that dies lets go), and POST
each, signed the Standard Webhooks way, with a short timeout and no redirects (`deliver`).
A 2xx is delivered; anything else is retried on RETRY_SCHEDULE, then failed. No transaction
is open while an endpoint is being called.

Other apps take part in the same pass (`register`): a `fan_out` sees each batch of new events
inside dispatch's transaction (and makes its own rows from them: the messages to users), and a
`run` is called after the webhooks (sends what is due: messages, shipping records, alerts).
One worker, one schedule; this module imports none of them.

In production an endpoint must be https and every address its name resolves to must be a
public one; the name is resolved at each delivery and the connection goes to the address
that was checked, so DNS cannot slip a private address in between.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import certifi
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.claims import claim_due
from outbox.models import RETRY_SCHEDULE, Attempt, Delivery, Event, WebhookEndpoint
from wxproto.beijing import beijing_iso

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
        "timestamp": beijing_iso(event.created_at),
        "data": event.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# -- a pass ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Consumer:
    """Another app's part of the worker's pass (registered in its AppConfig.ready)."""

    name: str
    # Called with each batch of events as they are dispatched, inside that transaction.
    fan_out: Callable[[list[Event]], None] | None = None
    # Called once a pass after the webhooks; answers how many things it tried.
    run: Callable[[threading.Event | None], int] | None = None


CONSUMERS: dict[str, Consumer] = {}


def register(consumer: Consumer) -> None:
    CONSUMERS[consumer.name] = consumer


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
        for consumer in CONSUMERS.values():
            if consumer.fan_out is not None:
                consumer.fan_out(events)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(dispatched_at=now)
    return len(events)


def claim(limit: int = BATCH) -> list[Delivery]:
    """Take up to `limit` due deliveries for this runner, held long enough to try them all."""
    now = timezone.now()
    # Each attempt ends at its timeout (DNS, then the rest: post()), so a batch is done by then.
    hold = timedelta(seconds=(2 * settings.WEBHOOK_TIMEOUT_SECONDS + 1) * limit + 30)
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
    ids = claim_due(due, order_by=("next_attempt_at", "pk"), limit=limit, hold=hold)
    return list(Delivery.objects.filter(pk__in=ids).select_related("event", "endpoint").order_by("next_attempt_at", "pk"))


def run_pass(stop: threading.Event | None = None) -> int:
    """Dispatch, then deliver what is due; how many deliveries were tried."""
    dispatch()
    tried = 0
    for delivery in claim():
        if stop is not None and stop.is_set():
            break  # the rest are released when their hold ends
        try:
            deliver(delivery)
        except Exception:  # recording it failed (the database?): its hold ends, it is tried again
            logger.exception("webhook delivery %s could not be recorded", delivery.pk)
        tried += 1
    for consumer in CONSUMERS.values():
        if consumer.run is not None and not (stop is not None and stop.is_set()):
            try:
                tried += consumer.run(stop)
            except Exception:  # one part failing leaves the others (and the next pass) to run
                logger.exception("outbox worker: %s failed", consumer.name)
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
    except TimeoutError as exc:
        error = str(exc)
    except (http.client.HTTPException, OSError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"
    except Exception as exc:  # whatever it was, this delivery's attempt failed; the worker goes on
        logger.exception("webhook %s to endpoint %s failed", event.event_id, endpoint.pk)
        error = f"{exc.__class__.__name__}: {exc}"
    # What the endpoint answered is kept as text the database can store (no NUL).
    answer, error = answer.replace("\x00", "\\x00"), error.replace("\x00", "\\x00")[:300]
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


# IPv6 ranges that carry an IPv4 address, which is the one that is reached: NAT64's
# well-known prefix and the old IPv4-compatible form.
_EMBEDDING = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96")]


def is_public(address: str) -> bool:
    """Whether a connection to `address` reaches the public internet: a global address, and
    for IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo, NAT64), that one too."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        inner += [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in _EMBEDDING if ip in net]
        return all(v4 is None or v4.is_global for v4 in inner)
    return True


def _addresses(host: str, port: int, timeout: float) -> list[str]:
    """The host's addresses, or Refused when the name does not resolve within `timeout`."""
    found: list = []
    resolver = threading.Thread(target=lambda: found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)), daemon=True)
    resolver.start()
    resolver.join(timeout)
    if not found:
        raise Refused(f"{host} 无法解析" + ("（超时）" if resolver.is_alive() else ""))
    return list(dict.fromkeys(info[4][0] for info in found[0]))


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST to `url` at an address checked now; (status, the start of the answer). No redirect
    is followed (a 3xx is an answer like any other that is not 2xx). The whole attempt, from
    the connection to the last byte read, ends at WEBHOOK_TIMEOUT_SECONDS whatever the
    endpoint does (a watchdog closes the socket): a slow endpoint never holds the worker."""
    parts = urlsplit(url)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise Refused("只能推送到 https 地址")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("端口无效") from None
    host = parts.hostname or ""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    addresses = _addresses(host, port, timeout)
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise Refused(f"{host} 解析到内网或本机地址 {address}")
    sock = socket.create_connection((addresses[0], port), timeout=timeout)
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _cut, args=[sock, expired])
    watchdog.start()
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=certifi.where())
            sock = context.wrap_socket(sock, server_hostname=host)
            watchdog.args = [sock, expired]
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.sock = sock  # connected to the address that was checked
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers={**headers, "Host": parts.netloc})
        response = connection.getresponse()
        answer = response.read(ANSWER_KEPT * 4)
        if expired.is_set():  # cut short: whatever was read is not an answer
            raise TimeoutError
        return response.status, answer.decode("utf-8", "replace")[:ANSWER_KEPT]
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise TimeoutError(f"Timeout: 未在 {timeout:g} 秒内答完") from exc
        raise
    finally:
        watchdog.cancel()
        sock.close()


def _cut(sock: socket.socket, expired: threading.Event) -> None:
    """The attempt's time is up: end whatever it is waiting for."""
    expired.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

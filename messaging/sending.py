"""Sending the messages that are due (docs/messages.md#sending): a part of the outbox worker's
pass. Due messages are claimed like webhook deliveries (SKIP LOCKED, held for a while, so any
number of workers share them); each is one call to WeChat with the app's shared access_token
(accounts/wechat_token.py: refreshed once and the call made again when WeChat refuses the
token), made outside any transaction, and its answer decides:

- errcode 0: sent. A shipping record WeChat already holds is sent too (10060023: the same
  record again; 10060003: its one reship used; 10060002: the payer confirmed receipt): an
  earlier attempt's answer was lost on the way.
- busy (-1), a system error, a network error, a token still refused: tried again on the
  message's schedule, then failed.
- the member said no (43101: no grant left or messages blocked; 43004: not following the
  公众号): refused, never tried again.
- anything else (40037: the template was deleted; 47003: data its keywords refuse; 40003; a
  token WeChat will not give, such as 40125 for a wrong app secret …): failed at once, with
  WeChat's errcode for the operator (the health panel shows it).

Each message is claimed again just before its call (a compare-and-set on its hold), so a
worker whose batch outlived its hold never sends a message another worker has taken since.
A member who turned messages off after a message was made is not sent it.

The access_token never reaches a log or the attempt log: only the errcode and WeChat's errmsg.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.wechat_token import MINIPROGRAM, OFFICIAL, TOKEN_REFUSED, WAIT_FOR, call_with_token, post_json
from common.claims import claim_due
from messaging.compose import SKIPPED_OFF
from messaging.models import Channel, Message, MessageAttempt
from wxproto.beijing import beijing_iso
from wxproto.errors import WeChatError

logger = logging.getLogger(__name__)

BATCH = 50
ENDPOINTS: dict[str, tuple[str, str]] = {
    Channel.OFFICIAL: ("cgi-bin/message/template/send", OFFICIAL),
    Channel.MINIPROGRAM: ("cgi-bin/message/subscribe/send", MINIPROGRAM),
    Channel.SHIPPING: ("wxa/sec/order/upload_shipping_info", MINIPROGRAM),
}
# errcodes that say "not now": tried again on the schedule.
BUSY = {-1, 45009, 10060012, 10060019, *TOKEN_REFUSED}
# The member said no: never tried again.
REFUSED = {43101, 43004}
# A shipping record WeChat already holds (an earlier attempt's answer was lost): done.
# 10060023: the same information again; 10060003: the one reship used; 10060002: received.
ALREADY_SHIPPED = {10060023, 10060003, 10060002}
# A shipping record for a payment WeChat does not know yet (just paid): asked again later.
SHIPPING_NOT_YET = {10060001}
NETWORK = -2  # our code in the attempt log for a call that got no usable answer


def run_pass(stop: threading.Event | None = None) -> int:
    """Send what is due (the outbox worker calls it each pass); how many were tried."""
    tried = 0
    for message in claim():
        if stop is not None and stop.is_set():
            break  # the rest are released when their hold ends
        if not hold_again(message):
            continue  # its batch's hold ran out and another worker took it
        try:
            send(message)
        except Exception:  # recording it failed (the database?): its hold ends, it is tried again
            logger.exception("WeChat message %s could not be recorded", message.pk)
        tried += 1
    return tried


def one_call() -> timedelta:
    """The longest one message's call may take: waiting for another process's token refresh,
    a refresh of our own, the call, and once more after a refused token."""
    return timedelta(seconds=2 * (WAIT_FOR + settings.WECHAT_HTTP_TIMEOUT + settings.WECHAT_MESSAGE_TIMEOUT_SECONDS) + 10)


def hold_again(message: Message) -> bool:
    """Take the message again for one call, only while it is still this worker's: its hold is
    still the one this worker set (a compare-and-set)."""
    until = timezone.now() + one_call()
    taken = Message.objects.filter(pk=message.pk, status=Message.Status.PENDING, claimed_until=message.claimed_until).update(
        claimed_until=until
    )
    message.claimed_until = until
    return bool(taken)


def claim(limit: int = BATCH) -> list[Message]:
    now = timezone.now()
    # Long enough for the batch to reach its last message, which is then held again for its call.
    hold = one_call() * limit
    due = Message.objects.filter(status=Message.Status.PENDING, next_attempt_at__lte=now)
    ids = claim_due(due, order_by=("next_attempt_at", "pk"), limit=limit, hold=hold)
    return list(Message.objects.filter(pk__in=ids).select_related("user", "event").order_by("next_attempt_at", "pk"))


def send(message: Message) -> bool:
    """Call WeChat once for the message and record how it went; True when WeChat took it."""
    path, app = ENDPOINTS[message.channel]
    if message.channel != Channel.SHIPPING and not message.user.wechat_messages:
        return skip(message, SKIPPED_OFF)
    body = dict(message.body)
    if message.channel == Channel.OFFICIAL:
        # WeChat sends one message per openid and client_msg_id within 10 minutes: a retry soon
        # after an answer that was lost does not reach the member twice. The event's id is
        # unique across sites sharing one 公众号 (a message's pk is not).
        body["client_msg_id"] = message.event.event_id if message.event else f"wxr{message.pk}"
    elif message.channel == Channel.SHIPPING:
        body["upload_time"] = beijing_iso(timezone.now(), "milliseconds")
    started = time.monotonic()
    try:
        answer = call_with_token(
            lambda token: post_json(path, body, token=token, timeout=settings.WECHAT_MESSAGE_TIMEOUT_SECONDS), app
        )
        errcode, errmsg = _errcode(answer), str(answer.get("errmsg", ""))
    except WeChatError as exc:  # no token to be had, or no answer
        answer = {}
        errcode = int(exc.code) if not exc.retryable and exc.code.lstrip("-").isdigit() else NETWORK
        errmsg = f"access_token: {exc.code}" if errcode != NETWORK else f"{exc.code}: {exc}"
    duration = int((time.monotonic() - started) * 1000)
    return record(message, errcode, errmsg, answer, duration)


def skip(message: Message, reason: str) -> bool:
    Message.objects.filter(pk=message.pk, status=Message.Status.PENDING).update(
        status=Message.Status.SKIPPED, last_error=reason, claimed_until=None
    )
    message.status, message.last_error = Message.Status.SKIPPED, reason
    return False


def _errcode(answer: dict) -> int:
    code = answer.get("errcode", 0)
    return code if isinstance(code, int) and not isinstance(code, bool) else NETWORK


def record(message: Message, errcode: int, errmsg: str, answer: dict, duration: int) -> bool:
    now = timezone.now()
    sent = errcode == 0 or (message.channel == Channel.SHIPPING and errcode in ALREADY_SHIPPED)
    attempts = message.attempts + 1
    fields: dict = {
        "attempts": attempts,
        "last_attempt_at": now,
        "last_errcode": errcode,
        "last_error": "" if errcode == 0 else errmsg[:300],
        "claimed_until": None,
    }
    if sent:
        fields.update(status=Message.Status.SENT, sent_at=now, msgid=str(answer.get("msgid", ""))[:32])
    elif errcode in REFUSED and message.channel != Channel.SHIPPING:
        fields.update(status=Message.Status.REFUSED)
    elif (errcode in BUSY or errcode == NETWORK or (message.channel == Channel.SHIPPING and errcode in SHIPPING_NOT_YET)) and (
        attempts <= len(message.retries)
    ):
        fields.update(next_attempt_at=now + message.retries[attempts - 1])
    else:
        fields.update(status=Message.Status.FAILED)
        logger.warning("WeChat %s %s failed: errcode %s", message.get_channel_display(), message.pk, errcode)
    with transaction.atomic():
        MessageAttempt.objects.create(
            message=message,
            attempted_at=now,
            errcode=errcode,
            error=("ok" if errcode == 0 else errmsg)[:300],
            duration_ms=duration,
        )
        # Only while it is still this runner's (an operator's resend meanwhile wins).
        Message.objects.filter(pk=message.pk, status=Message.Status.PENDING, attempts=message.attempts).update(**fields)
    for name, value in fields.items():
        setattr(message, name, value)
    return sent

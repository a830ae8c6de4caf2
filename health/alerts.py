"""The alert watcher: the red rows of the health panel, sent to the operators' channels
(health/channels.py), each kind at most once per ALERT_INTERVAL_MINUTES.

It runs inside the outbox worker's pass (`deliver_webhooks`, every 2 seconds; registered in
HealthConfig.ready), at most once each 15 seconds across every worker: the turn is a claim on
its heartbeat (common.models.Heartbeat.claim). Nothing runs while no channel is configured.

A pass takes the snapshot (health.checks) and, for each red check with news (an item newer
than what its kind last alerted on, or a job newly silent):

- if its kind alerted less than ALERT_INTERVAL_MINUTES ago, the alert is held back: counted,
  with a one-line summary, on the kind's AlertState row;
- otherwise one alert goes out, saying how many were held back since and what they were
  ("另有 N 条同类告警被合并"). Held-back alerts also go out by themselves once the interval
  has passed, so that nothing held back is lost when no newer news follows.

Several workers never send the same alert: the decision is made on the kind's row, locked
(`select_for_update`) in a short transaction that writes the Alert (发送中) and moves the row
on; the HTTP call and the mail are made after it commits, outside any transaction. An alert
that no channel took is counted as held back again, so the next one carries it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.health import Check
from common.loop import beat
from common.models import Heartbeat
from common.redact import describe
from health import channels
from health.checks import WATCHER, snapshot
from health.models import Alert, AlertState

logger = logging.getLogger(__name__)

# The watcher runs inside deliver_webhooks' pass, whose heartbeat (like its own) is written
# after the pass: while it runs both are alive, whatever their last heartbeat says, and an
# alert that they stopped would be wrong as it is sent. Their silence is the panel's to show
# (when deliver_webhooks stops, no alert goes out at all: docs/operations.md).
ALIVE_WHILE_WATCHING = {"job:deliver_webhooks", f"job:{WATCHER.name}"}


def run(stop: threading.Event | None = None) -> int:
    """The outbox worker's part: when a channel is configured and it is this worker's turn
    (once each 15 seconds across all of them), one watcher pass. How many alerts it sent."""
    if not channels.configured() or (stop is not None and stop.is_set()):
        return 0
    now = timezone.now()
    if not Heartbeat.claim(WATCHER.name, WATCHER.interval, now):
        return 0
    try:
        sent = watch(now)
    except Exception as exc:
        beat(WATCHER.name, WATCHER.interval, now, describe(exc))
        raise
    beat(WATCHER.name, WATCHER.interval, now)
    return sent


def watch(now: datetime | None = None) -> int:
    """One watcher pass: alert each red check with news, hold back what comes too soon, send
    what was held back once its interval passed. How many alerts it sent."""
    now = now or timezone.now()
    every = timedelta(minutes=settings.ALERT_INTERVAL_MINUTES)
    checks = {c.kind: c for c in snapshot(now) if c.alert and c.kind not in ALIVE_WHILE_WATCHING}
    red = [kind for kind, c in checks.items() if c.is_red]
    states = {s.kind: s for s in AlertState.objects.filter(kind__in=red)}
    states.update({s.kind: s for s in AlertState.objects.filter(held_back__gt=0)})
    # Only kinds with something to do take a lock: news, or alerts held back.
    due = [kind for kind in red if kind not in states or states[kind].is_news(checks[kind].newest)]
    due += [kind for kind, s in states.items() if s.held_back and kind not in due]
    sent = 0
    for kind in due:
        decided = decide(kind, checks.get(kind), now, every)
        if decided is not None:
            deliver(*decided)
            sent += 1
    return sent


def decide(kind: str, check: Check | None, now: datetime, every: timedelta) -> tuple[Alert, str] | None:
    """On the kind's locked row: the alert to send now (written, 发送中) and its admin URL, or
    None (nothing new, or held back)."""
    with transaction.atomic():
        AlertState.objects.get_or_create(kind=kind)
        state = AlertState.objects.select_for_update().get(kind=kind)
        red = check is not None and check.is_red
        news = red and state.is_news(check.newest if check else None)
        if not news and not state.held_back:
            return None
        if not state.may_send(now, every):
            if news and check is not None:
                state.hold(summary_line(check, now), check.newest, now)
            return None
        label = check.label if check is not None else kind
        alert = Alert.objects.create(
            kind=kind, label=label, text=compose(kind, check, state), held_back=state.held_back, created_at=now
        )
        state.sent(check.newest if red and check is not None else None, now)
    url = f"{settings.SITE_URL}{check.url}" if check is not None and check.url else ""
    return alert, url


def compose(kind: str, check: Check | None, state: AlertState) -> str:
    """The alert's text: a title line, what the check says now, and what was held back."""
    site = settings.SITE_NAME
    if check is not None and check.is_red:
        lines = [f"【{site}】{check.label}", check.detail]
    else:
        lines = [f"【{site}】{check.label if check else kind}：已恢复", "目前已恢复正常；以下为此前合并的告警"]
    if state.held_back:
        lines.append(f"另有 {state.held_back} 条同类告警被合并：")
        lines += [f"- {line}" for line in state.held_summary.splitlines()]
    return "\n".join(lines)


def summary_line(check: Check, now: datetime) -> str:
    return f"{timezone.localtime(now):%H:%M} {check.detail}"


def deliver(alert: Alert, url: str = "") -> None:
    """Send a decided alert on every channel (outside any transaction) and record how it went."""
    title, _, body = alert.text.partition("\n")
    results = channels.send(title, body, url)
    failed = {name: error for name, error in results.items() if error}
    if not failed:
        outcome = Alert.Outcome.SENT
    elif len(failed) == len(results):
        outcome = Alert.Outcome.FAILED
    else:
        outcome = Alert.Outcome.PARTIAL
    alert.channels = "；".join(f"{name}：{'失败' if error else '成功'}" for name, error in results.items())[:200]
    alert.error = "；".join(f"{name}：{error}" for name, error in failed.items())[:300]
    alert.outcome, alert.sent_at = outcome, timezone.now()
    alert.save(update_fields=["channels", "error", "outcome", "sent_at"])
    logger.info("alert %s (%s): %s", alert.pk, alert.kind, alert.get_outcome_display())
    if outcome == Alert.Outcome.FAILED:
        held_again(alert)


def held_again(alert: Alert) -> None:
    """No channel took it: it and what it carried count as held back, for the next alert."""
    lines = alert.text.splitlines()
    carried = [line[2:] for line in lines if line.startswith("- ")]
    own = f"{timezone.localtime(alert.created_at):%H:%M} 未送达：{lines[1] if len(lines) > 1 else alert.label}"
    AlertState.requeue(alert.kind, alert.held_back + 1, [*carried, own])

"""The health panel and alerts: helpers shared by the tests in this package (plain functions,
as in tests/admin)."""

from __future__ import annotations

import json

from django.core.management import call_command

from common.loop import repeat
from payments.models import Incident
from tests.admin import settled_order
from tests.factories import make_user

# A 企业微信 group robot's webhook: its key is the secret that lets anyone post to the group.
KEY = "6f1e2d3c-4b5a-4c7d-9e8f-0a1b2c3d9f7e"
WEBHOOK = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
# Each job's interval as its command runs by default.
INTERVALS = {"sweep_orders": 20.0, "reconcile_bill": 600.0, "deliver_webhooks": 2.0, "expire_bonus": 300.0}


def a_pass_of(job: str, error: Exception | None = None, interval: float | None = None) -> None:
    """One pass of `job` as `repeat` runs it (its work left out), failing with `error`."""

    def one_pass(stop) -> None:
        if error is not None:
            raise error

    try:
        repeat(one_pass, loop=False, interval=interval or INTERVALS[job], job=job)
    except Exception as exc:
        if exc is not error:
            raise


def others_running(*but: str) -> None:
    """Every job passes now, except those named."""
    for job in INTERVALS:
        if job not in but:
            a_pass_of(job)


def worker_pass() -> None:
    """One pass of the outbox worker (`deliver_webhooks`), which runs the alert watcher."""
    call_command("deliver_webhooks")


def received(robot) -> list[str]:
    """The markdown messages the group robot was sent."""
    messages = []
    for call in robot.calls:
        body = json.loads(call.request.body)
        assert body["msgtype"] == "markdown"
        messages.append(body["markdown"]["content"])
    return messages


def an_incident() -> Incident:
    order = settled_order(make_user("inc", openid="oInc"))
    return Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "关闭后仍收到付款", order=order)

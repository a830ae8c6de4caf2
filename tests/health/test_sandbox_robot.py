"""The operator's view when the order sweeper stops, end to end over real HTTP: the health
panel is red a minute after its last pass, and the sandbox's 企业微信 group robot (/sandbox/robot/)
receives one alert for it, and no second one while it stays stopped."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from devtools.wechat_sandbox.robot import robot_messages
from tests.health import others_running, worker_pass

pytestmark = pytest.mark.django_db(transaction=True)


def test_reconcile_orders_stopped_turns_the_panel_red_within_a_minute_and_the_robot_gets_one_alert(
    sandbox_url, settings, admin_client
):
    settings.ALERT_WECOM_WEBHOOK = "{SITE_URL}/sandbox/cgi-bin/webhook/send?key=ops-group"
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        call_command("reconcile_orders")  # its last pass; then it is stopped
        for _ in range(3):  # 20 s apart: the other jobs and the worker go on
            others_running("sweep_orders")
            worker_pass()
            job = admin_client.get("/admin/").content.decode()
            assert 'data-testid="job-sweep_orders" data-state="ok"' in job
            assert robot_messages() == []
            clock.shift(20)
        others_running("sweep_orders")
        worker_pass()  # 60 s after its last pass
        page = admin_client.get("/admin/").content.decode()
        assert 'data-testid="job-sweep_orders" data-state="red"' in page
        (alert,) = robot_messages()
        assert alert["key"] == "ops-group" and "sweep_orders" in alert["content"] and "已停止" in alert["content"]
        for _ in range(10):  # still stopped: nothing new to say for 15 minutes
            clock.shift(timedelta(seconds=30))
            others_running("sweep_orders")
            worker_pass()
        assert len(robot_messages()) == 1

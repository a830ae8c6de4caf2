from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import responses
import time_machine

from tests.health import WEBHOOK

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(autouse=True)
def keep_the_test_connection(monkeypatch):
    """`repeat` closes old connections before each pass: here that would be the test's own."""
    monkeypatch.setattr("common.loop.close_old_connections", lambda: None)


@pytest.fixture
def clock():
    """The time, stopped at NOW; move it with clock.shift(seconds)."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def no_channels(settings):
    """No alert channel unless a test sets one up."""
    settings.ALERT_WECOM_WEBHOOK = ""
    settings.ADMINS = []
    settings.ALERT_INTERVAL_MINUTES = 15


@pytest.fixture
def robot(settings):
    """The group robot, answering as 企业微信 does (`answering` changes its answer)."""
    settings.ALERT_WECOM_WEBHOOK = WEBHOOK
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(WEBHOOK, json={"errcode": 0, "errmsg": "ok"})
        yield mock

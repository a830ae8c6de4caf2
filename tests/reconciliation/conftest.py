from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests.factories import make_user
from tests.reconciliation.bills import fake_wechat

BEIJING = ZoneInfo("Asia/Shanghai")
# The day reconciled in most tests, and "now": after 10:00 the next day, when its bill is ready.
DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=BEIJING)


@pytest.fixture
def wechat():
    """WeChat's bills, by day (v2 and v3 alike): `wechat.bills[DAY] = bill(...)` or an exception."""
    with fake_wechat() as fake:
        yield fake


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def payer(db):
    return make_user("payer", openid="oPayer0000000000000000000001")

"""Several outbox workers watching at once, on PostgreSQL (row locks across real connections):
one alert goes out."""

from __future__ import annotations

import pytest

from health import alerts
from health.models import Alert
from tests.health import an_incident, others_running, received
from tests.helpers import NEEDS_ROW_LOCKS, race

pytestmark = [*NEEDS_ROW_LOCKS, pytest.mark.django_db(transaction=True)]


def test_six_watchers_at_once_send_one_alert(robot):
    others_running()
    an_incident()
    results = race([alerts.watch] * 6)
    assert sorted(results) == [0, 0, 0, 0, 0, 1]
    assert len(received(robot)) == 1 and Alert.objects.count() == 1

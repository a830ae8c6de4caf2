"""Each pass of a looping command leaves its job's heartbeat; a failing pass in --loop is
recorded and the loop goes on; a heartbeat that cannot be written never stops the job."""

from __future__ import annotations

import logging
import os
import signal
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError

from common.loop import repeat
from common.models import Heartbeat
from tests.health import KEY, a_pass_of
from tests.health.conftest import NOW

pytestmark = pytest.mark.django_db


def loop_of(passes: list, interval: float = 0.01, job: str = "expire_bonus") -> list[int]:
    """Run `repeat` in --loop mode over `passes` (each a callable or an exception to raise),
    stopping after the last as SIGTERM would; which passes ran."""
    ran: list[int] = []

    def one_pass(stop) -> None:
        ran.append(len(ran))
        step = passes[len(ran) - 1]
        if len(ran) == len(passes):
            stop.set()
        if isinstance(step, Exception):
            raise step

    with mock.patch.object(signal, "signal"):  # the test runner keeps its own handlers
        repeat(one_pass, loop=True, interval=interval, job=job)
    return ran


def test_each_pass_of_a_job_leaves_its_heartbeat(clock):
    a_pass_of("sweep_orders")
    beat = Heartbeat.objects.get()
    assert (beat.job, beat.interval, beat.succeeded_at, beat.failed_at) == ("sweep_orders", 20.0, NOW, None)
    assert beat.started_at == beat.finished_at == NOW and beat.pid == os.getpid() and beat.host
    clock.shift(20)
    a_pass_of("sweep_orders")
    beat.refresh_from_db()
    assert beat.succeeded_at == NOW + timedelta(seconds=20) and Heartbeat.objects.count() == 1


def test_both_names_of_the_order_sweeper_beat_as_one_job_every_20_seconds(clock):
    call_command("reconcile_orders")
    clock.shift(5)
    call_command("sweep_orders")
    beat = Heartbeat.objects.get()
    assert (beat.job, beat.interval, beat.succeeded_at) == ("sweep_orders", 20.0, NOW + timedelta(seconds=5))


def test_a_failing_pass_in_a_loop_is_logged_recorded_and_the_loop_goes_on(caplog):
    error = RuntimeError(f"POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY} refused")
    with caplog.at_level(logging.ERROR, logger="common.loop"):
        ran = loop_of([error, None])
    assert ran == [0, 1]  # the second pass ran after the first failed
    beat = Heartbeat.objects.get(job="expire_bonus")
    assert beat.failed_at is not None and beat.succeeded_at > beat.failed_at and not beat.last_pass_failed
    assert beat.last_error.startswith("RuntimeError: POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***")
    assert KEY not in beat.last_error
    assert "expire_bonus: the pass failed" in caplog.text


def test_a_loop_whose_last_pass_failed_says_so():
    loop_of([None, ValueError("the bill is malformed")], job="reconcile_bill")
    beat = Heartbeat.objects.get(job="reconcile_bill")
    assert beat.last_pass_failed and beat.last_error == "ValueError: the bill is malformed"


def test_a_single_pass_that_fails_raises_as_before_after_its_heartbeat():
    with pytest.raises(ZeroDivisionError):
        repeat(lambda stop: 1 / 0, loop=False, interval=300, job="expire_bonus")
    beat = Heartbeat.objects.get()
    assert beat.last_pass_failed and beat.last_error == "ZeroDivisionError: division by zero"


def test_a_heartbeat_that_cannot_be_written_never_stops_the_loop(caplog):
    with (
        mock.patch.object(Heartbeat, "record", side_effect=OperationalError("the database is down")),
        caplog.at_level(logging.ERROR, logger="common.loop"),
    ):
        ran = loop_of([None, None, None])
    assert ran == [0, 1, 2] and not Heartbeat.objects.exists()
    assert "expire_bonus: its heartbeat could not be written" in caplog.text


def test_a_loop_without_a_job_name_beats_nothing():
    repeat(lambda stop: None, loop=False, interval=1)
    assert not Heartbeat.objects.exists()


def test_of_several_workers_one_takes_each_turn(clock):
    assert Heartbeat.claim("health_alerts", 15) is True
    assert Heartbeat.claim("health_alerts", 15) is False  # another worker, the same turn
    clock.shift(14)
    assert Heartbeat.claim("health_alerts", 15) is False
    clock.shift(1)
    assert Heartbeat.claim("health_alerts", 15) is True


def test_a_long_pass_is_alive_and_a_pass_that_hangs_goes_red(clock):
    from health.checks import jobs

    def state() -> str:
        return next(s.state for s in jobs() if s.job.name == "deliver_webhooks")

    a_pass_of("deliver_webhooks")  # every 2 s
    seen = []

    def slow_pass(stop) -> None:  # a few webhook timeouts in a row
        clock.shift(50)
        seen.append(state())
        clock.shift(50)
        seen.append(state())

    clock.shift(2)
    repeat(slow_pass, loop=False, interval=2.0, job="deliver_webhooks")
    assert seen == ["ok", "red"]  # alive while it works; silent a minute after it began
    assert state() == "ok"  # it ended

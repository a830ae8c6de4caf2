"""Repeated failed sign-ins are slowed down, then refused for a while, per name and per address."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
URL = reverse("accounts:login")


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def attempt(client, username, password="wrong-password-1", ip="10.0.0.1"):
    return client.post(URL, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_after_two_failures_the_next_try_must_wait_and_the_password_is_not_checked(client, clock):
    make_user("victim")
    attempt(client, "victim")
    attempt(client, "victim")
    too_soon = attempt(client, "victim", password=PASSWORD)
    assert too_soon.status_code == 429 and "请 1 秒后再试" in too_soon.content.decode()
    assert "_auth_user_id" not in client.session
    clock.shift(timedelta(seconds=1.1))
    assert attempt(client, "victim", password=PASSWORD).status_code == 302


def test_the_wait_doubles_with_each_failure(client, clock):
    make_user("victim")
    for _ in range(3):
        attempt(client, "victim")
        clock.shift(timedelta(seconds=5))
    clock.shift(timedelta(seconds=-5))
    assert "请 2 秒后再试" in attempt(client, "victim").content.decode()


def test_five_failures_for_one_name_lock_it_even_with_the_right_password(client, settings, clock):
    make_user("victim")
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "victim", ip=f"10.0.1.{n}").status_code == 200
        clock.shift(timedelta(seconds=30))
    locked = attempt(client, "victim", ip="10.0.1.99")
    assert locked.status_code == 429 and "登录失败次数过多" in locked.content.decode()
    assert "15 分钟" in locked.content.decode()
    clock.shift(timedelta(minutes=5))
    right = attempt(client, "victim", password=PASSWORD, ip="10.0.2.1")
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    clock.shift(timedelta(minutes=11))
    assert attempt(client, "victim", password=PASSWORD, ip="10.0.2.1").status_code == 302


def test_five_failures_from_one_address_lock_that_address(client, settings, clock):
    make_user("someone")
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, f"guess{n}", ip="10.0.3.3")
        clock.shift(timedelta(seconds=30))
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.3").status_code == 429
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.4").status_code == 302


def test_a_success_resets_the_count(client, settings, clock):
    make_user("forgetful")
    attempt(client, "forgetful")
    clock.shift(timedelta(seconds=30))
    assert attempt(client, "forgetful", password=PASSWORD).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "forgetful").status_code == 200
        clock.shift(timedelta(seconds=30))


def test_passwords_are_not_kept_in_the_failure_records(client):
    make_user("victim")
    attempt(client, "victim", password="my-secret-guess-77")
    assert AccessAttempt.objects.exists()
    assert not any("my-secret-guess-77" in a.post_data for a in AccessAttempt.objects.all())

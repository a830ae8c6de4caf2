"""Repeated failed logins are refused for a while, per name and per address (django-axes)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
URL = reverse("accounts:login")


def attempt(client, username, password="wrong-password-1", ip="10.0.0.1"):
    return client.post(URL, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_for_one_name_lock_it_even_with_the_right_password(client, settings):
    make_user("victim")
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "victim", ip=f"10.0.1.{n}").status_code == 200
    locked = attempt(client, "victim", ip="10.0.1.99")
    assert locked.status_code == 429 and "登录失败次数过多" in locked.content.decode()
    assert "15 分钟" in locked.content.decode()
    right = attempt(client, "victim", password=PASSWORD, ip="10.0.2.1")
    assert right.status_code == 429 and "_auth_user_id" not in client.session


def test_five_failures_from_one_address_lock_that_address(client, settings):
    make_user("someone")
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, f"guess{n}", ip="10.0.3.3")
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.3").status_code == 429
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.4").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, settings):
    make_user("forgetful")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "forgetful")
    assert attempt(client, "forgetful", password=PASSWORD).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "forgetful").status_code == 200

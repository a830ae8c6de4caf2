"""Repeated failed sign-ins are slowed down, then refused for a while: per name, and per
address only far later, so that one person's typos never lock out the others behind the
same address (a carrier NAT, an office)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from common.http import client_ip
from tests.accounts.helpers import IN_WECHAT
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
URL = reverse("accounts:login")


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def attempt(client, username, password="wrong-password-1", ip="10.0.0.1", **extra):
    return client.post(URL, {"username": username, "password": password, "next": "/orders/"}, REMOTE_ADDR=ip, **extra)


def fail_until_locked(client, clock, settings, username="victim", ip="10.0.0.1", **extra):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, username, ip=ip, **extra).status_code == 200
        clock.shift(timedelta(seconds=30))
    return attempt(client, username, ip=ip, **extra)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_after_two_failures_the_next_try_must_wait_and_the_password_is_not_checked(client, clock):
    make_user("victim")
    attempt(client, "victim")
    attempt(client, "victim")
    too_soon = attempt(client, "victim", password=PASSWORD)
    assert too_soon.status_code == 429 and "请 1 秒后再试" in too_soon.content.decode()
    assert not signed_in(client)
    clock.shift(timedelta(seconds=1.1))
    assert attempt(client, "victim", password=PASSWORD).status_code == 302


def test_the_wait_keeps_the_name_in_its_field(client, clock):
    make_user("victim")
    attempt(client, "victim")
    attempt(client, "victim")
    html = attempt(client, "victim").content.decode()
    assert 'name="username" value="victim"' in html
    assert 'name="next" value="/orders/"' in html


def test_the_wait_doubles_with_each_failure(client, clock):
    make_user("victim")
    for _ in range(3):
        attempt(client, "victim")
        clock.shift(timedelta(seconds=5))
    clock.shift(timedelta(seconds=-5))
    assert "请 2 秒后再试" in attempt(client, "victim").content.decode()


def test_a_wrong_password_gets_our_own_friendly_words(client, user):
    html = attempt(client, "alice").content.decode()
    assert "用户名或密码不对" in html and "区分大小写" in html
    assert "请输入一个正确的" not in html  # Django's own text
    assert 'name="username" value="alice"' in html


def test_five_failures_for_one_name_lock_it_even_with_the_right_password(client, settings, clock):
    make_user("victim")
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "victim", ip=f"10.0.1.{n}").status_code == 200
        clock.shift(timedelta(seconds=30))
    locked = attempt(client, "victim", ip="10.0.1.99")
    html = locked.content.decode()
    assert locked.status_code == 429 and "登录失败次数过多" in html and "victim" in html
    # The first failure leaves the 15-minute count 13 minutes from now: then the name is free.
    assert "13 分钟" in html
    clock.shift(timedelta(minutes=5))
    right = attempt(client, "victim", password=PASSWORD, ip="10.0.2.1")
    assert right.status_code == 429 and "8 分钟" in right.content.decode() and not signed_in(client)
    clock.shift(timedelta(minutes=8, seconds=1))
    assert attempt(client, "victim", password=PASSWORD, ip="10.0.2.1").status_code == 302


def test_tries_during_a_lockout_neither_count_nor_prolong_it(client, settings, clock):
    make_user("victim")
    fail_until_locked(client, clock, settings)
    for _ in range(3):
        clock.shift(timedelta(minutes=1))
        assert attempt(client, "victim").status_code == 429
    failures = sum(a.failures_since_start for a in AccessAttempt.objects.filter(username="victim"))
    assert failures == settings.AXES_FAILURE_LIMIT
    clock.shift(timedelta(minutes=13))
    assert attempt(client, "victim", password=PASSWORD).status_code == 302


def test_the_lockout_page_says_how_long_and_has_ways_back(client, settings, clock):
    make_user("victim")
    locked = fail_until_locked(client, clock, settings)
    html = locked.content.decode()
    assert "分钟</strong>后再试" in html
    assert 'href="/accounts/login/?next=%2Forders%2F"' in html  # back to sign-in, `next` kept
    assert 'href="/recharge/"' in html and "返回首页" in html
    assert "使用微信登录" not in html  # outside WeChat


def test_inside_wechat_the_lockout_page_offers_the_wechat_sign_in(client, settings, clock):
    make_user("victim")
    html = fail_until_locked(client, clock, settings, **IN_WECHAT).content.decode()
    assert "使用微信登录" in html and "/accounts/wechat/authorize/?next=%2Forders%2F&amp;signin=1" in html


def test_another_user_on_the_same_address_is_not_locked_out_by_someone_elses_typos(client, settings, clock):
    make_user("typist")
    make_user("demo")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        attempt(client, "typist", ip="100.64.0.1")
        clock.shift(timedelta(seconds=30))
    assert attempt(client, "typist", password=PASSWORD, ip="100.64.0.1").status_code == 429
    demo = attempt(client, "demo", password=PASSWORD, ip="100.64.0.1")
    assert demo.status_code == 302 and demo["Location"] == "/orders/"


def test_someone_elses_typos_do_not_slow_a_person_down_either(client, clock):
    make_user("typist")
    make_user("demo")
    attempt(client, "typist", ip="100.64.0.1")
    attempt(client, "typist", ip="100.64.0.1")
    assert attempt(client, "demo", password=PASSWORD, ip="100.64.0.1").status_code == 302


def test_an_address_is_locked_only_at_its_own_much_higher_limit(client, settings, clock):
    assert settings.LOGIN_ADDRESS_FAILURE_LIMIT == 50
    make_user("someone")
    for n in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT - 1):
        assert attempt(client, f"guess{n}", ip="10.0.3.3").status_code == 200
    clock.shift(timedelta(seconds=1))
    locked = attempt(client, "guess-last", ip="10.0.3.3")
    assert locked.status_code == 429 and "当前网络" in locked.content.decode()
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.3").status_code == 429
    assert attempt(client, "someone", password=PASSWORD, ip="10.0.3.4").status_code == 302


def test_a_success_forgets_its_own_names_failures_only(client, settings, clock):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 8
    make_user("attacker")
    for n in range(7):
        attempt(client, f"guess{n}", ip="10.0.4.4")
    # Signing in to one's own account from the address does not wipe the address's count.
    assert attempt(client, "attacker", password=PASSWORD, ip="10.0.4.4").status_code == 302
    client.post(reverse("accounts:logout"))
    assert attempt(client, "guess-more", ip="10.0.4.4").status_code == 429


def test_a_success_resets_the_count(client, settings, clock):
    make_user("forgetful")
    attempt(client, "forgetful")
    clock.shift(timedelta(seconds=30))
    assert attempt(client, "forgetful", password=PASSWORD).status_code == 302
    client.post(reverse("accounts:logout"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "forgetful").status_code == 200
        clock.shift(timedelta(seconds=30))


def test_an_operator_lifts_a_lockout_with_axes_reset_username(client, settings, clock):
    make_user("victim")
    fail_until_locked(client, clock, settings)
    call_command("axes_reset_username", "victim")
    assert attempt(client, "victim", password=PASSWORD).status_code == 302


def test_passwords_are_not_kept_in_the_failure_records(client):
    make_user("victim")
    attempt(client, "victim", password="my-secret-guess-77")
    assert AccessAttempt.objects.exists()
    assert not any("my-secret-guess-77" in a.post_data for a in AccessAttempt.objects.all())


# -- the client's address behind reverse proxies ------------------------------------------


def behind_proxy(client, username, password, client_address, proxy="127.0.0.1"):
    """Through one nginx: it connects from `proxy` and appends the address it was reached from."""
    return attempt(client, username, password=password, ip=proxy, HTTP_X_FORWARDED_FOR=client_address)


def test_behind_a_proxy_each_client_has_its_own_address(client, settings, clock):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT  # the address counts early here
    make_user("a")
    make_user("b")
    for _ in range(6):
        behind_proxy(client, "a", "wrong-password-1", "203.0.113.7")
        clock.shift(timedelta(seconds=30))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}
    assert behind_proxy(client, "b", PASSWORD, "198.51.100.9").status_code == 302
    client.post(reverse("accounts:logout"))
    assert behind_proxy(client, "b", PASSWORD, "203.0.113.7").status_code == 429  # a's address is locked


def test_without_a_proxy_count_the_header_is_ignored(client, settings, clock):
    assert settings.TRUSTED_PROXY_COUNT == 0
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = settings.AXES_FAILURE_LIMIT
    make_user("a")
    make_user("b")
    for _ in range(6):
        behind_proxy(client, "a", "wrong-password-1", "203.0.113.7")
        clock.shift(timedelta(seconds=30))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"127.0.0.1"}
    # A client cannot escape its address's count by naming another one.
    assert behind_proxy(client, "b", PASSWORD, "198.51.100.9").status_code == 429


@pytest.mark.parametrize(
    ("count", "header", "expected"),
    [
        (0, "203.0.113.7", "192.0.2.1"),
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # what the client wrote itself is not believed
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "192.0.2.1"),  # fewer hops than proxies: nothing to trust
        (1, "", "192.0.2.1"),
        (1, "not-an-address", "192.0.2.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_takes_the_address_the_outermost_proxy_saw(settings, count, header, expected):
    settings.TRUSTED_PROXY_COUNT = count
    request = RequestFactory().post(URL, REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=header)
    assert client_ip(request) == expected

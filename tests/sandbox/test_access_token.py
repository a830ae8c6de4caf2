"""An app's access_token over real HTTP: stable_token, token, and an API that checks the token."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from devtools.wechat_sandbox import tokens
from devtools.wechat_sandbox.models import AccessToken, Fault
from wxproto.beijing import BEIJING

pytestmark = pytest.mark.django_db(transaction=True)


def stable(sandbox_url, force_refresh=False, **body):
    body = {
        "grant_type": "client_credential",
        "appid": settings.WECHAT_APPID,
        "secret": settings.WECHAT_APP_SECRET,
        "force_refresh": force_refresh,
        **body,
    }
    return requests.post(sandbox_url + "cgi-bin/stable_token", json=body, timeout=10).json()


def plain(sandbox_url, **query):
    query = {"grant_type": "client_credential", "appid": settings.WECHAT_APPID, "secret": settings.WECHAT_APP_SECRET, **query}
    return requests.get(sandbox_url + "cgi-bin/token", params=query, timeout=10).json()


def api(sandbox_url, access_token):
    """An API call with the token: its errcode, 0 when it answered."""
    answer = requests.get(sandbox_url + "cgi-bin/get_api_domain_ip", params={"access_token": access_token}, timeout=10).json()
    assert ("ip_list" in answer) == ("errcode" not in answer), answer
    return answer.get("errcode", 0)


def later(time_machine, **delta):
    time_machine.move_to(timezone.now() + timedelta(**delta), tick=True)


def test_stable_token_answers_the_same_token_while_it_has_more_than_5_minutes(sandbox_url, time_machine):
    first = stable(sandbox_url)
    assert first["expires_in"] == 7200 and len(first["access_token"]) >= 100
    later(time_machine, minutes=30)
    again = stable(sandbox_url)
    assert again["access_token"] == first["access_token"]
    assert 7200 - 30 * 60 - 5 <= again["expires_in"] <= 7200 - 30 * 60
    assert api(sandbox_url, first["access_token"]) == 0
    assert tokens.count_issued(settings.WECHAT_APPID) == 1


def test_in_its_last_5_minutes_stable_token_answers_a_new_one_and_the_old_works_to_its_expiry(sandbox_url, time_machine):
    old = stable(sandbox_url)["access_token"]
    later(time_machine, seconds=7200 - 240)
    new = stable(sandbox_url)
    assert new["access_token"] != old and new["expires_in"] == 7200
    assert api(sandbox_url, old) == 0
    later(time_machine, seconds=241)
    assert api(sandbox_url, old) == 42001
    assert api(sandbox_url, new["access_token"]) == 0


def test_force_refresh_makes_a_new_token_the_old_one_works_5_more_minutes(sandbox_url, time_machine):
    old = stable(sandbox_url)["access_token"]
    new = stable(sandbox_url, force_refresh=True)["access_token"]
    assert new != old
    assert stable(sandbox_url)["access_token"] == new
    assert api(sandbox_url, old) == 0
    later(time_machine, minutes=5, seconds=1)
    assert api(sandbox_url, old) == 40001
    assert api(sandbox_url, new) == 0


def test_a_second_forced_refresh_30s_later_ends_the_first_ones_predecessor_at_once(sandbox_url, time_machine):
    leaked = stable(sandbox_url)["access_token"]
    first = stable(sandbox_url, force_refresh=True)["access_token"]
    # Within 30s of the last forced refresh, another does nothing.
    assert stable(sandbox_url, force_refresh=True)["access_token"] == first
    later(time_machine, seconds=31)
    second = stable(sandbox_url, force_refresh=True)["access_token"]
    assert second != first
    assert api(sandbox_url, leaked) == 40001
    assert api(sandbox_url, first) == 0 and api(sandbox_url, second) == 0


def test_force_refresh_is_limited_to_20_a_day(sandbox_url, time_machine):
    time_machine.move_to(datetime(2026, 11, 25, 10, 0, tzinfo=BEIJING), tick=True)  # far from midnight
    for _ in range(20):
        assert "access_token" in stable(sandbox_url, force_refresh=True)
        later(time_machine, seconds=31)
    assert stable(sandbox_url, force_refresh=True)["errcode"] == 45009
    assert "access_token" in stable(sandbox_url)  # normal mode is not limited by it
    later(time_machine, days=1)
    assert "access_token" in stable(sandbox_url, force_refresh=True)


def test_each_call_to_token_issues_a_new_one_and_the_previous_works_5_more_minutes(sandbox_url, time_machine):
    first = plain(sandbox_url)
    assert first["expires_in"] == 7200
    second = plain(sandbox_url)["access_token"]
    assert second != first["access_token"]
    assert api(sandbox_url, first["access_token"]) == 0
    later(time_machine, minutes=4)
    assert api(sandbox_url, first["access_token"]) == 0
    later(time_machine, minutes=1, seconds=1)
    assert api(sandbox_url, first["access_token"]) == 40001
    assert api(sandbox_url, second) == 0


def test_token_and_stable_token_keep_their_tokens_apart(sandbox_url):
    kept = stable(sandbox_url)["access_token"]
    plain(sandbox_url)
    plain(sandbox_url)
    assert stable(sandbox_url)["access_token"] == kept
    assert tokens.count_issued(settings.WECHAT_APPID) == 3
    assert tokens.count_issued(settings.WECHAT_APPID, AccessToken.STABLE) == 1


def test_the_mini_program_has_its_own_token(sandbox_url):
    mine = stable(sandbox_url)["access_token"]
    mp = stable(sandbox_url, appid=settings.WECHAT_MINIPROGRAM_APPID, secret=settings.WECHAT_MINIPROGRAM_SECRET)
    assert mp["access_token"] != mine and api(sandbox_url, mp["access_token"]) == 0
    # The 公众号's secret is not the mini program's.
    assert stable(sandbox_url, appid=settings.WECHAT_MINIPROGRAM_APPID)["errcode"] == 40125


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"secret": "wrong-secret"}, 40125),
        ({"secret": ""}, 41004),
        ({"appid": "wx_unknown"}, 40013),
        ({"appid": ""}, 41002),
        ({"grant_type": "authorization_code"}, 40002),
    ],
)
def test_credentials_are_checked_as_wechat_does(sandbox_url, body, errcode):
    assert stable(sandbox_url, **body)["errcode"] == errcode
    assert plain(sandbox_url, **body)["errcode"] == errcode
    assert tokens.count_issued(settings.WECHAT_APPID) == 0


def test_stable_token_takes_only_a_posted_json_object(sandbox_url):
    url = sandbox_url + "cgi-bin/stable_token"
    assert requests.get(url, timeout=10).json()["errcode"] == 43002
    assert requests.post(url, data="grant_type=client_credential", timeout=10).json()["errcode"] == 47001


def test_an_api_answers_40001_for_an_unknown_token_and_41001_for_none(sandbox_url):
    assert api(sandbox_url, "made-up-token") == 40001
    assert requests.get(sandbox_url + "cgi-bin/get_api_domain_ip", timeout=10).json()["errcode"] == 41001


def test_an_api_answers_42001_for_an_expired_token_and_stable_token_then_issues_a_new_one(sandbox_url, time_machine):
    old = stable(sandbox_url)["access_token"]
    later(time_machine, seconds=7201)
    assert api(sandbox_url, old) == 42001
    new = stable(sandbox_url)["access_token"]
    assert new != old and api(sandbox_url, new) == 0


def test_expire_all_makes_the_apps_tokens_expire_now(sandbox_url):
    old = stable(sandbox_url)["access_token"]
    other = plain(sandbox_url)["access_token"]
    mp = stable(sandbox_url, appid=settings.WECHAT_MINIPROGRAM_APPID, secret=settings.WECHAT_MINIPROGRAM_SECRET)
    assert tokens.expire_all(settings.WECHAT_APPID) == 2
    assert api(sandbox_url, old) == 42001 and api(sandbox_url, other) == 42001
    assert api(sandbox_url, mp["access_token"]) == 0
    assert stable(sandbox_url)["access_token"] != old
    assert tokens.count_issued(settings.WECHAT_APPID, AccessToken.STABLE) == 2


def test_two_callers_at_once_get_one_new_token(sandbox_url):
    stable(sandbox_url)
    tokens.expire_all(settings.WECHAT_APPID)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: stable(sandbox_url), range(4)))
    assert len({a["access_token"] for a in answers}) == 1
    assert tokens.count_issued(settings.WECHAT_APPID) == 2


def test_the_busy_switch_answers_minus_1_once(sandbox_url):
    tokens.busy_next()
    assert stable(sandbox_url) == {"errcode": -1, "errmsg": "system error"}
    assert "access_token" in stable(sandbox_url)
    assert Fault.objects.get(out_trade_no="").token_busy == 0
    # A wrong secret does not use the switch up.
    tokens.busy_next(2)
    assert stable(sandbox_url, secret="wrong")["errcode"] == 40125
    assert plain(sandbox_url)["errcode"] == -1 and stable(sandbox_url)["errcode"] == -1
    assert "access_token" in plain(sandbox_url)


def test_the_busy_switch_is_global_only():
    with pytest.raises(ValidationError):
        Fault(out_trade_no="T1", token_busy=1).full_clean()

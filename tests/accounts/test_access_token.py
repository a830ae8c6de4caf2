"""The shared access_token (accounts/wechat_token.py) against WeChat's documented stable_token
answers (WeChat's own host, faked with responses): one token for every process, refreshed
before it expires and once when WeChat refuses it, never logged."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import responses
import time_machine
from django.utils import timezone

from accounts import wechat_token
from accounts.models import AccessToken
from tests.helpers import NEEDS_ROW_LOCKS, race
from wxproto.errors import WeChatError

STABLE = "https://api.weixin.qq.com/cgi-bin/stable_token"
APPID, MINI = "wx1111111111111111", "wx2222222222222222"


@pytest.fixture(autouse=True)
def real_wechat(settings):
    settings.WECHAT_API_BASE_URL = ""
    settings.WECHAT_SESSION_HOOK = ""
    settings.WECHAT_APPID, settings.WECHAT_APP_SECRET = APPID, "s" * 32
    settings.WECHAT_MINIPROGRAM_APPID, settings.WECHAT_MINIPROGRAM_SECRET = MINI, "m" * 32


class WeChat:
    """stable_token as WeChat documents it: the same token while it is valid; a new one when forced."""

    def __init__(self):
        self.issued = 0
        self.tokens: dict[str, str] = {}
        self.busy = 0

    @property
    def current(self) -> str:
        return self.tokens.get(APPID, "")

    @current.setter
    def current(self, value: str) -> None:
        self.tokens[APPID] = value

    def answer(self, request):
        body = json.loads(request.body)
        if self.busy:
            self.busy -= 1
            return 200, {}, json.dumps({"errcode": -1, "errmsg": "system error"})
        if body["force_refresh"] or not self.tokens.get(body["appid"]):
            self.issued += 1
            self.tokens[body["appid"]] = f"TOKEN-{body['appid']}-{self.issued}"
        return 200, {}, json.dumps({"access_token": self.tokens[body["appid"]], "expires_in": 7200})


@pytest.fixture
def wechat():
    fake = WeChat()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, STABLE, callback=fake.answer)
        fake.calls = mock.calls
        yield fake


@pytest.mark.django_db
def test_one_token_is_asked_for_and_kept_for_everyone(wechat):
    first = wechat_token.access_token()
    assert first == wechat_token.access_token() == AccessToken.objects.get(appid=APPID).token
    assert len(wechat.calls) == 1
    sent = json.loads(wechat.calls[0].request.body)
    assert sent == {"grant_type": "client_credential", "appid": APPID, "secret": "s" * 32, "force_refresh": False}


@pytest.mark.django_db
def test_each_app_has_its_own(wechat):
    assert wechat_token.access_token(wechat_token.MINIPROGRAM).startswith(f"TOKEN-{MINI}")
    assert wechat_token.access_token(wechat_token.OFFICIAL).startswith(f"TOKEN-{APPID}")


@pytest.mark.django_db
def test_it_is_asked_for_again_five_minutes_before_it_expires(wechat):
    wechat_token.access_token()
    with time_machine.travel(timezone.now() + timedelta(seconds=7200 - 299)):
        wechat.current = ""  # WeChat has a new one by then
        assert wechat_token.access_token() == f"TOKEN-{APPID}-2"
    assert len(wechat.calls) == 2


@pytest.mark.django_db
def test_a_token_wechat_refuses_is_refreshed_once_by_force_and_the_call_made_again(wechat):
    seen = []

    def call(token):
        seen.append(token)
        return {"errcode": 40001, "errmsg": "invalid credential"} if len(seen) == 1 else {"ok": token}

    answer = wechat_token.call_with_token(call)
    assert answer == {"ok": f"TOKEN-{APPID}-2"} and seen == [f"TOKEN-{APPID}-1", f"TOKEN-{APPID}-2"]
    assert json.loads(wechat.calls[-1].request.body)["force_refresh"] is True
    # Another caller that saw the old token refused too gets the new one, with no second refresh.
    assert wechat_token.access_token(stale=f"TOKEN-{APPID}-1") == f"TOKEN-{APPID}-2"
    assert wechat.issued == 2


@pytest.mark.django_db
def test_a_busy_wechat_leaves_the_still_valid_token_in_use(wechat):
    token = wechat_token.access_token()
    with time_machine.travel(timezone.now() + timedelta(seconds=7200 - 60)):
        wechat.busy = 1
        assert wechat_token.access_token() == token  # not refreshed, still valid for a minute
    assert AccessToken.objects.get(appid=APPID).refreshing_until is None  # the claim is let go


@pytest.mark.django_db
def test_with_no_valid_token_a_busy_wechat_is_an_error_to_retry(wechat):
    wechat.busy = 1
    with pytest.raises(WeChatError) as busy:
        wechat_token.access_token()
    assert busy.value.code == "-1" and busy.value.retryable


@pytest.mark.django_db
def test_the_token_and_the_secret_are_never_logged(wechat, caplog):
    caplog.set_level(logging.DEBUG)

    def refused(token):
        return {"errcode": 40001}

    wechat_token.call_with_token(refused)
    assert "TOKEN-" not in caplog.text and "s" * 32 not in caplog.text
    assert "TOKEN-" not in repr(AccessToken.objects.get(appid=APPID))


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
@pytest.mark.django_db(transaction=True)
def test_processes_asking_at_once_make_one_refresh_and_share_its_token(wechat):
    results = race([wechat_token.access_token] * 4)
    assert len(set(results)) == 1 and all(isinstance(r, str) for r in results), results
    assert wechat.issued == 1 and len(wechat.calls) == 1

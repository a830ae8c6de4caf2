"""accounts/wechat_login.py against WeChat's documented answers (WeChat's own hosts, no
sandbox): the URLs it sends people and requests to, and what it makes of every answer."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from accounts import wechat_login
from wxproto.errors import WeChatError

API = "https://api.weixin.qq.com/"


@pytest.fixture(autouse=True)
def real_wechat(settings):
    settings.WECHAT_API_BASE_URL = ""
    settings.WECHAT_OPEN_BASE_URL = ""
    settings.WECHAT_SESSION_HOOK = ""
    settings.WECHAT_APPID, settings.WECHAT_APP_SECRET = "wx1111111111111111", "s" * 32
    settings.WECHAT_MINIPROGRAM_APPID, settings.WECHAT_MINIPROGRAM_SECRET = "wx2222222222222222", "m" * 32
    settings.WECHAT_HTTP_TIMEOUT = 4.0


def test_the_authorize_url_is_wechats_with_the_redirect_fully_encoded():
    url = wechat_login.authorize_url("https://pay.example.com/accounts/wechat/callback/?next=/recharge/", "st4te")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://open.weixin.qq.com/connect/oauth2/authorize"
    assert parts.fragment == "wechat_redirect"
    assert "redirect_uri=https%3A%2F%2Fpay.example.com%2Faccounts%2Fwechat%2Fcallback%2F%3Fnext%3D%2Frecharge%2F" in url
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "appid": "wx1111111111111111",
        "redirect_uri": "https://pay.example.com/accounts/wechat/callback/?next=/recharge/",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "st4te",
    }


@responses.activate
def test_a_code_becomes_the_openid_and_unionid_and_the_secret_goes_only_to_wechat():
    responses.get(
        API + "sns/oauth2/access_token",
        json={
            "access_token": "AT",
            "expires_in": 7200,
            "refresh_token": "RT",
            "openid": "oA",
            "scope": "snsapi_base",
            "unionid": "uA",
        },
    )
    assert wechat_login.oauth_identity("CODE") == ("oA", "uA")
    sent = parse_qs(urlsplit(responses.calls[0].request.url).query)
    assert sent == {"appid": ["wx1111111111111111"], "secret": ["s" * 32], "code": ["CODE"], "grant_type": ["authorization_code"]}


@responses.activate
def test_jscode2session_answers_the_session_for_the_server_only():
    responses.get(API + "sns/jscode2session", json={"openid": "oM", "session_key": "c2Vzc2lvbmtleQ=="})
    assert wechat_login.mini_program_session("JSCODE")["openid"] == "oM"
    assert parse_qs(urlsplit(responses.calls[0].request.url).query)["appid"] == ["wx2222222222222222"]


@responses.activate
def test_wechats_errcode_is_the_errors_code_and_names_no_secret():
    responses.get(API + "sns/jscode2session", json={"errcode": 40029, "errmsg": "invalid code, rid: 1"})
    with pytest.raises(WeChatError) as exc:
        wechat_login.mini_program_session("USED")
    assert exc.value.code == "40029" and not exc.value.retryable
    assert "m" * 32 not in str(exc.value)


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 502, "body": "bad gateway"},
        {"status": 200, "body": "<html>not json</html>"},
        {"status": 200, "json": ["not", "an", "object"]},
        {"status": 200, "json": {"access_token": "AT"}},  # no openid
        {"body": requests.ConnectTimeout("timed out")},
    ],
    ids=["5xx", "not-json", "not-object", "no-openid", "timeout"],
)
@responses.activate
def test_no_usable_answer_is_a_network_error_a_retry_may_help(answer):
    responses.get(API + "sns/oauth2/access_token", **answer)
    with pytest.raises(WeChatError) as exc:
        wechat_login.oauth_identity("CODE")
    assert exc.value.code == "NETWORK" and exc.value.retryable


def test_the_configuration_never_shows_a_secret():
    assert "s" * 32 not in repr(wechat_login.WeChatApps.current())

"""网页授权 and jscode2session, over real HTTP, with wechatpy's WeChatOAuth and WeChatClient."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings
from django.utils import timezone
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException, WeChatOAuthException

from devtools.wechat_sandbox.models import AuthCode

pytestmark = pytest.mark.django_db(transaction=True)


def code_from(response):
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return query["code"][0], query.get("state", [""])[0]


def test_it_redirects_back_with_a_code_and_the_same_state(wxoauth):
    wxoauth.state = "csrf-123"
    response = requests.get(wxoauth.authorize_url, allow_redirects=False, timeout=10)
    code, state = code_from(response)
    assert state == "csrf-123"
    assert response.headers["Location"].startswith(settings.SITE_URL + "/cb/?code=")
    token = wxoauth.fetch_access_token(code)
    assert token["openid"].startswith("o") and len(token["openid"]) == 28
    assert token["expires_in"] == 7200 and token["scope"] == "snsapi_base"


def test_one_browser_keeps_one_openid_and_another_gets_another(wxoauth):
    alice, bob = requests.Session(), requests.Session()
    openids = []
    for browser in (alice, alice, bob):
        wxoauth.state = "s"
        code, _ = code_from(browser.get(wxoauth.authorize_url, allow_redirects=False, timeout=10))
        openids.append(wxoauth.fetch_access_token(code)["openid"])
    assert openids[0] == openids[1] != openids[2]


def test_a_code_works_once(wxoauth):
    code, _ = code_from(requests.get(wxoauth.authorize_url, allow_redirects=False, timeout=10))
    wxoauth.fetch_access_token(code)
    with pytest.raises(WeChatOAuthException) as exc:
        wxoauth.fetch_access_token(code)
    assert exc.value.errcode == 40163


def test_an_unknown_or_expired_code_is_invalid(wxoauth):
    with pytest.raises(WeChatOAuthException) as exc:
        wxoauth.fetch_access_token("made-up-code")
    assert exc.value.errcode == 40029
    code, _ = code_from(requests.get(wxoauth.authorize_url, allow_redirects=False, timeout=10))
    AuthCode.objects.filter(code=code).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(WeChatOAuthException) as exc:
        wxoauth.fetch_access_token(code)
    assert exc.value.errcode == 40029


def test_a_wrong_secret_is_refused(wxoauth):
    code, _ = code_from(requests.get(wxoauth.authorize_url, allow_redirects=False, timeout=10))
    wxoauth.secret = "wrong-secret"
    with pytest.raises(WeChatOAuthException) as exc:
        wxoauth.fetch_access_token(code)
    assert exc.value.errcode == 40125


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ({"redirect_uri": "https://evil.example/cb/"}, "10003"),
        ({"appid": "wx_unknown"}, "10016"),
        ({"scope": "snsapi_everything"}, "10005"),
        ({"response_type": "token"}, "10004"),
        ({"state": "s" * 129}, "10009"),
    ],
)
def test_bad_authorize_requests_show_an_error_page_and_no_code(sandbox_url, query, errcode):
    params = {
        "appid": settings.WECHAT_APPID,
        "redirect_uri": settings.SITE_URL + "/cb/",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "x",
        **query,
    }
    response = requests.get(sandbox_url + "connect/oauth2/authorize", params=params, allow_redirects=False, timeout=10)
    assert response.status_code == 200 and errcode in response.text and "授权失败" in response.text
    assert not AuthCode.objects.exists()


def miniprogram_client(sandbox_url, secret=None):
    client = WeChatClient(
        settings.WECHAT_MINIPROGRAM_APPID, secret or settings.WECHAT_MINIPROGRAM_SECRET, access_token="not-used-by-jscode2session"
    )
    client.wxa.API_BASE_URL = sandbox_url
    return client


def test_jscode2session_answers_the_openid_of_a_minted_code_once(sandbox_url):
    minted = requests.post(sandbox_url + "mp/login-code", json={"openid": "oMiniUser0001"}, timeout=10).json()
    client = miniprogram_client(sandbox_url)
    session = client.wxa.code_to_session(minted["code"])
    assert session["openid"] == "oMiniUser0001" and session["session_key"]
    with pytest.raises(WeChatClientException) as exc:
        client.wxa.code_to_session(minted["code"])
    assert exc.value.errcode == 40163


def test_jscode2session_refuses_a_bad_code_or_secret(sandbox_url):
    with pytest.raises(WeChatClientException) as exc:
        miniprogram_client(sandbox_url).wxa.code_to_session("nope")
    assert exc.value.errcode == 40029
    minted = requests.post(sandbox_url + "mp/login-code", json={}, timeout=10).json()
    with pytest.raises(WeChatClientException) as exc:
        miniprogram_client(sandbox_url, secret="wrong").wxa.code_to_session(minted["code"])
    assert exc.value.errcode == 40125


def test_an_oauth_code_is_not_a_login_code(wxoauth, sandbox_url):
    code, _ = code_from(requests.get(wxoauth.authorize_url, allow_redirects=False, timeout=10))
    with pytest.raises(WeChatClientException) as exc:
        miniprogram_client(sandbox_url).wxa.code_to_session(code)
    assert exc.value.errcode == 40029


@pytest.mark.parametrize("body", [b"[1]", b"not json", b'{"openid": 5}'])
def test_minting_a_login_code_refuses_bad_input(sandbox_url, body):
    response = requests.post(sandbox_url + "mp/login-code", data=body, timeout=10)
    assert response.status_code == 400 and "errcode" in response.json()

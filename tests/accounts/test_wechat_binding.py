"""网页授权 binding rules, through the sandbox's OAuth over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings

from accounts.models import User
from tests.accounts.helpers import openid, unionid, wechat_redirect
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, next_path="/recharge/"):
    response = client.get("/accounts/wechat/authorize/", {"next": next_path})
    assert response.status_code == 302
    return response["Location"]


def test_authorize_asks_wechat_for_a_silent_snsapi_base_with_a_session_state(client, sandbox_url):
    url = start(client)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert url.startswith(sandbox_url + "connect/oauth2/authorize?") and url.endswith("#wechat_redirect")
    assert query["appid"] == settings.WECHAT_APPID and query["scope"] == "snsapi_base"
    assert query["redirect_uri"] == settings.SITE_URL + "/accounts/wechat/callback/"
    assert len(query["state"]) >= 24 and query["state"] == client.session["wechat_oauth"]["state"]
    assert settings.WECHAT_APP_SECRET not in url


def test_it_binds_the_openid_to_the_signed_in_user_and_follows_next(client, sandbox_url):
    user = make_user("bob")
    client.force_login(user)
    response = client.get(wechat_redirect(start(client, "/orders/")))
    assert response.status_code == 302 and response["Location"] == "/orders/"
    user.refresh_from_db()
    assert user.openid == openid() and user.unionid == unionid()


def test_an_off_site_next_is_not_followed(client, sandbox_url):
    client.force_login(make_user("bob"))
    response = client.get(wechat_redirect(start(client, "https://evil.example/")))
    assert response["Location"] == "/recharge/"


def test_a_signed_out_owner_is_signed_in(client, sandbox_url):
    make_user("owner", openid=openid())
    response = client.get(wechat_redirect(start(client)))
    assert response["Location"] == "/recharge/"
    assert client.session["_auth_user_id"] == str(User.objects.get(username="owner").pk)


def test_a_signed_out_stranger_logs_in_and_is_bound_after(client, sandbox_url):
    user = make_user("later")
    response = client.get(wechat_redirect(start(client)))
    assert response["Location"].startswith("/accounts/login/?next=%2Frecharge%2F")
    assert "_auth_user_id" not in client.session
    client.post(response["Location"], {"username": "later", "password": PASSWORD})
    user.refresh_from_db()
    assert user.openid == openid()


def test_a_signed_out_stranger_who_registers_is_bound(client, sandbox_url):
    client.get(wechat_redirect(start(client)))
    client.post("/accounts/register/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD})
    assert User.objects.get(username="newbie").openid == openid()


def problem(response):
    return response.context["message"] if response.context else response.content.decode()


def test_an_openid_bound_to_another_account_is_refused(client, sandbox_url):
    make_user("first", openid=openid())
    second = make_user("second")
    client.force_login(second)
    response = client.get(wechat_redirect(start(client)))
    assert response.status_code == 409 and "其他账户" in problem(response)
    second.refresh_from_db()
    assert second.openid is None


def test_a_bound_openid_is_not_silently_replaced(client, sandbox_url):
    user = make_user("bob", openid="oAlreadyBound")
    client.force_login(user)
    response = client.get(wechat_redirect(start(client), browser="someone-else"))
    # Not replaced; back to the page, which knows this is another WeChat (and offers no JSAPI).
    assert response.status_code == 302 and response["Location"] == "/recharge/"
    user.refresh_from_db()
    assert user.openid == "oAlreadyBound" and client.session["wechat_current_openid"] == openid("someone-else")


@pytest.mark.parametrize("state", ["状态", "forged-状态-value", "é" * 20, "s" * 129])
def test_a_non_ascii_or_over_long_state_is_a_bad_state_not_a_crash(client, sandbox_url, state):
    user = make_user("bob")
    client.force_login(user)
    callback = wechat_redirect(start(client))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = client.get("/accounts/wechat/callback/", {"code": code, "state": state})
    assert response.status_code == 400 and "这个授权链接已失效或不是从本站发起的，请重新授权。" in problem(response)
    user.refresh_from_db()
    assert user.openid is None


@pytest.mark.parametrize("tamper", ["missing", "forged", "reused", "other-session"])
def test_a_missing_forged_reused_or_foreign_state_is_refused(client, sandbox_url, tamper):
    from django.test import Client

    user = make_user("bob")
    client.force_login(user)
    callback = wechat_redirect(start(client))
    if tamper == "missing":
        callback = callback.split("&state=")[0]
    elif tamper == "forged":
        callback = callback.split("&state=")[0] + "&state=forged-state-value"
    elif tamper == "reused":
        client.get(callback)
        User.objects.filter(pk=user.pk).update(openid=None)
    else:
        client = Client()
        client.force_login(user)
    response = client.get(callback)
    assert response.status_code == 400 and "重新授权" in response.content.decode()
    user.refresh_from_db()
    assert user.openid is None


def test_a_used_code_gives_a_clear_page_and_a_retry_link(client, sandbox_url):
    user = make_user("bob")
    client.force_login(user)
    callback = wechat_redirect(start(client))
    code, state = parse_qs(urlsplit(callback).query)["code"][0], parse_qs(urlsplit(callback).query)["state"][0]
    # the code is spent elsewhere first (e.g. a double tap)
    requests.get(
        settings.SITE_URL + "/sandbox/sns/oauth2/access_token",
        timeout=10,
        params={
            "appid": settings.WECHAT_APPID,
            "secret": settings.WECHAT_APP_SECRET,
            "code": code,
            "grant_type": "authorization_code",
        },
    )
    response = client.get(callback)
    html = response.content.decode()
    assert response.status_code == 400 and "已经用过" in html and "/accounts/wechat/authorize/?next=" in html
    user.refresh_from_db()
    assert user.openid is None
    assert state not in html


def test_an_invalid_code_and_no_code_are_clear_pages(client, sandbox_url):
    client.force_login(make_user("bob"))
    callback = wechat_redirect(start(client))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    assert "无效或已过期" in client.get("/accounts/wechat/callback/", {"code": "made-up", "state": state}).content.decode()
    start(client)
    state = client.session["wechat_oauth"]["state"]
    response = client.get("/accounts/wechat/callback/", {"state": state})
    assert response.status_code == 400 and "没有收到微信的授权" in response.content.decode()


def test_over_long_parameters_are_refused(client, sandbox_url):
    client.force_login(make_user("bob"))
    start(client)
    response = client.get("/accounts/wechat/callback/", {"code": "c" * 5000, "state": "s" * 5000})
    assert response.status_code == 400 and User.objects.get(username="bob").openid is None


def test_wechat_unreachable_is_a_clear_page_with_retry(client, sandbox_url, settings):
    client.force_login(make_user("bob"))
    callback = wechat_redirect(start(client))
    settings.WECHAT_API_BASE_URL = "http://127.0.0.1:9/"
    response = client.get(callback)
    assert response.status_code == 502 and "连不上微信" in response.content.decode()
    assert "重新授权" in response.content.decode()


def test_the_secret_never_reaches_the_browser(client, sandbox_url):
    client.force_login(make_user("bob"))
    response = client.get(wechat_redirect(start(client)), follow=True)
    assert settings.WECHAT_APP_SECRET not in response.content.decode()


# -- the WeChat in use must be the account's to pay it by JSAPI (docs/paying.md) -------------------


def test_the_callback_remembers_which_wechat_this_browser_is(client, sandbox_url):
    user = make_user("bob", openid=openid())
    client.force_login(user)
    client.get(wechat_redirect(start(client)))
    assert client.session["wechat_current_openid"] == openid()


def test_an_account_bound_to_another_wechat_is_not_rebound_and_goes_on_to_its_page(client, sandbox_url):
    user = make_user("bob", openid=openid("bob"))
    client.force_login(user)
    response = client.get(wechat_redirect(start(client), browser="alice"))  # alice's WeChat, bob's account
    assert response.status_code == 302 and response["Location"] == "/recharge/"
    user.refresh_from_db()
    assert user.openid == openid("bob") and client.session["wechat_current_openid"] == openid("alice")


def test_inside_another_wechat_the_page_api_offers_a_qr_code_and_never_jsapi(client, sandbox_url):
    from tests.accounts.helpers import IN_WECHAT

    user = make_user("bob", openid=openid("bob"))
    client.force_login(user)
    client.get(wechat_redirect(start(client), browser="alice"))
    placed = client.post("/payments/prepay/", {"amount": "10.00"}, content_type="application/json", **IN_WECHAT).json()
    assert placed["pay"]["kind"] == "qrcode"
    refused = client.post(
        "/payments/prepay/", {"amount": "10.00", "method": "jsapi"}, content_type="application/json", **IN_WECHAT
    )
    assert refused.status_code == 400 and refused.json()["allowed"] == ["native"]


def test_a_wechat_bound_elsewhere_offers_to_sign_out_and_continue_with_it(client, sandbox_url):
    make_user("owner", openid=openid("alice"))
    stranger = make_user("stranger")
    client.force_login(stranger)
    response = client.get(wechat_redirect(start(client), browser="alice"))
    assert response.status_code == 409 and "无法绑定微信" in response.content.decode()
    assert 'data-testid="switch-wechat"' in response.content.decode()
    switched = client.post("/accounts/wechat/switch/", {"next": "/recharge/"})
    assert "_auth_user_id" not in client.session
    assert switched["Location"].startswith("/accounts/wechat/authorize/?") and "signin=1" in switched["Location"]
    back = client.get(wechat_redirect(client.get(switched["Location"])["Location"], browser="alice"))
    assert back["Location"] == "/recharge/"
    assert client.session["_auth_user_id"] == str(User.objects.get(username="owner").pk)


def test_an_unbound_account_inside_a_wechat_bound_elsewhere_gets_the_page_not_a_loop(client, sandbox_url):
    from tests.accounts.helpers import IN_WECHAT

    make_user("owner", openid=openid("alice"))
    client.force_login(make_user("stranger"))
    assert client.get(wechat_redirect(start(client), browser="alice")).status_code == 409
    page = client.get("/recharge/", **IN_WECHAT)
    assert page.status_code == 200  # not sent to 网页授权 again: WeChat already said which WeChat this is
    html = page.content.decode()
    assert "当前微信不是该账户绑定的微信" in html and "支付方式：<strong>微信扫码支付</strong>" in html

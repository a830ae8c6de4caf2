"""The sign-in page inside WeChat: a bound WeChat signs in with no password; an unbound one
gets 微信快捷登录 or binds to the account signed in to; outside WeChat nothing changes."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import get_messages

from accounts.models import User
from tests.accounts.helpers import IN_WECHAT, open_in_wechat, openid, unionid, wechat_redirect
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db(transaction=True)
LOGIN = "/accounts/login/"


def user_id(client):
    return client.session.get("_auth_user_id")


def test_inside_wechat_the_sign_in_page_first_asks_wechat_silently(client):
    response = client.get(LOGIN, {"next": "/orders/"}, **IN_WECHAT)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/wechat/authorize/?next=%2Forders%2F&signin=1"


def test_outside_wechat_the_sign_in_page_is_the_password_form_as_before(client):
    response = client.get(LOGIN, {"next": "/orders/"})
    html = response.content.decode()
    assert response.status_code == 200 and "登录账户" in html and 'name="password"' in html
    assert "微信快捷登录" not in html and "使用微信登录" not in html


def test_a_bound_wechat_signs_its_owner_in_with_no_password_and_goes_on_to_next(client, sandbox_url):
    owner = make_user("owner", openid=openid())
    response = client.get(LOGIN, {"next": "/orders/"}, **IN_WECHAT)
    response = client.get(response["Location"], **IN_WECHAT)
    callback = wechat_redirect(response["Location"])
    response = client.get(callback, **IN_WECHAT)
    assert response.status_code == 302 and response["Location"] == "/orders/"
    assert user_id(client) == str(owner.pk)


def test_an_off_site_next_is_not_followed_after_the_silent_sign_in(client, sandbox_url):
    make_user("owner", openid=openid())
    response = client.get(LOGIN, {"next": "https://evil.example/"}, **IN_WECHAT)
    assert "evil" not in response["Location"]


def test_an_unbound_wechat_comes_back_to_the_sign_in_page_offering_quick_login(client, sandbox_url):
    response = open_in_wechat(client, LOGIN + "?next=/orders/")
    html = response.content.decode()
    assert response.status_code == 200 and user_id(client) is None
    assert response.request["PATH_INFO"] == LOGIN
    assert parse_qs(response.request["QUERY_STRING"]) == {"next": ["/orders/"], "wechat": ["1"]}
    assert "微信快捷登录" in html and "登录后将绑定当前微信" in html and "将创建账户并绑定当前微信" in html
    assert 'name="password"' in html
    # Loading it again does not go round through WeChat again (no loop).
    again = client.get(LOGIN, {"next": "/orders/"}, **IN_WECHAT)
    assert again.status_code == 200 and "微信快捷登录" in again.content.decode()


def test_quick_login_makes_an_account_bound_to_this_wechat_with_no_password(client, sandbox_url):
    open_in_wechat(client, LOGIN + "?next=/orders/")
    response = client.post("/accounts/wechat/quick-login/", {"next": "/orders/"}, **IN_WECHAT)
    assert response.status_code == 302 and response["Location"] == "/orders/"
    user = User.objects.get()
    assert user_id(client) == str(user.pk)
    assert user.username.startswith("wx_") and len(user.username) <= 12
    assert not user.has_usable_password()
    assert user.openid == openid() and user.unionid == unionid()
    # Next time, inside WeChat, no password and no tap: the silent authorisation signs in.
    client.cookies.clear()  # the session is gone (expired, another day)
    response = open_in_wechat(client, "/orders/")
    assert response.status_code == 200 and user_id(client) == str(user.pk)


def test_quick_login_twice_makes_one_account(client, sandbox_url):
    open_in_wechat(client, LOGIN)
    first = client.post("/accounts/wechat/quick-login/", {"next": "/recharge/"}, **IN_WECHAT)
    second = client.post("/accounts/wechat/quick-login/", {"next": "/recharge/"}, **IN_WECHAT)
    assert first["Location"] == second["Location"] == "/recharge/"
    assert User.objects.count() == 1


def test_quick_login_without_a_wechat_identity_asks_wechat_first(client):
    response = client.post("/accounts/wechat/quick-login/", {"next": "/orders/"}, **IN_WECHAT)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/wechat/authorize/?next=%2Forders%2F&signin=1"
    assert not User.objects.exists()


def test_quick_login_needs_post_and_csrf(sandbox_url):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    open_in_wechat(client, LOGIN)
    assert client.get("/accounts/wechat/quick-login/", **IN_WECHAT).status_code == 405
    assert client.post("/accounts/wechat/quick-login/", **IN_WECHAT).status_code == 403
    assert not User.objects.exists()


def test_signing_in_with_a_password_binds_the_wechat_the_page_said_it_would(client, sandbox_url):
    user = make_user("later")
    open_in_wechat(client, LOGIN + "?next=/orders/")
    response = client.post(LOGIN, {"username": "later", "password": PASSWORD, "next": "/orders/"}, **IN_WECHAT)
    assert response["Location"] == "/orders/"
    user.refresh_from_db()
    assert user.openid == openid() and user.unionid == unionid()


def test_registering_from_there_says_it_binds_and_does(client, sandbox_url):
    open_in_wechat(client, LOGIN)
    assert "注册后将绑定当前微信" in client.get("/accounts/register/", **IN_WECHAT).content.decode()
    client.post("/accounts/register/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}, **IN_WECHAT)
    assert User.objects.get(username="newbie").openid == openid()


def test_a_stranger_page_outside_wechat_says_nothing_of_binding(client):
    assert "绑定当前微信" not in client.get("/accounts/register/").content.decode()


def test_after_signing_out_inside_wechat_it_waits_for_a_tap_then_needs_no_password(client, sandbox_url):
    owner = make_user("owner", openid=openid())
    open_in_wechat(client, LOGIN)
    assert user_id(client) == str(owner.pk)
    response = client.post("/accounts/logout/", **IN_WECHAT)
    assert response["Location"] == LOGIN and user_id(client) is None
    page = client.get(LOGIN, **IN_WECHAT)
    html = page.content.decode()
    # Not signed straight back in (退出登录 would undo itself), but one tap away, no password.
    assert page.status_code == 200 and "使用微信登录" in html and 'name="password"' in html
    tap = page.context["wechat_signin_url"]
    assert tap == "/accounts/wechat/authorize/?next=%2Frecharge%2F&signin=1"
    response = client.get(tap, **IN_WECHAT)
    response = client.get(wechat_redirect(response["Location"]), **IN_WECHAT)
    assert response["Location"] == "/recharge/" and user_id(client) == str(owner.pk)


def test_signing_out_then_in_as_another_account_keeps_the_wechat_where_it_is(client, sandbox_url):
    make_user("owner", openid=openid())
    other = make_user("other")
    open_in_wechat(client, LOGIN)
    client.post("/accounts/logout/", **IN_WECHAT)
    client.post(LOGIN, {"username": "other", "password": PASSWORD}, **IN_WECHAT)
    assert user_id(client) == str(other.pk)
    other.refresh_from_db()
    assert other.openid is None


def test_when_wechat_fails_the_sign_in_page_offers_the_password_and_does_not_loop(client, sandbox_url, settings):
    response = client.get(LOGIN, {"next": "/orders/"}, **IN_WECHAT)
    response = client.get(response["Location"], **IN_WECHAT)
    callback = wechat_redirect(response["Location"])
    settings.WECHAT_API_BASE_URL = "http://127.0.0.1:9/"  # WeChat unreachable
    response = client.get(callback, **IN_WECHAT)
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == LOGIN
    page = client.get(response["Location"], **IN_WECHAT)
    html = page.content.decode()
    assert page.status_code == 200 and 'name="password"' in html and "使用微信登录" in html
    assert any("连不上微信" in str(m) and "用户名和密码" in str(m) for m in get_messages(page.wsgi_request))
    assert client.get(LOGIN, {"next": "/orders/"}, **IN_WECHAT).status_code == 200  # no second try on its own


def test_the_one_time_state_still_guards_the_silent_sign_in(client, sandbox_url):
    make_user("owner", openid=openid())
    response = client.get(LOGIN, **IN_WECHAT)
    response = client.get(response["Location"], **IN_WECHAT)
    callback = wechat_redirect(response["Location"])
    code = parse_qs(urlsplit(callback).query)["code"][0]
    forged = client.get("/accounts/wechat/callback/", {"code": code, "state": "made-up"}, **IN_WECHAT)
    assert forged.status_code == 400 and user_id(client) is None
    assert client.get(callback, **IN_WECHAT).status_code == 400  # the state was spent by the forged try


def test_a_disabled_owner_is_not_signed_in(client, sandbox_url):
    make_user("gone", openid=openid(), is_active=False)
    response = open_in_wechat(client, LOGIN)
    assert response.status_code == 403 and "已停用" in response.content.decode() and user_id(client) is None
    assert client.post("/accounts/wechat/quick-login/", **IN_WECHAT)["Location"].startswith("/accounts/wechat/")
    assert User.objects.count() == 1


def test_the_sign_in_page_still_works_when_the_page_is_a_post_inside_wechat(client, user):
    response = client.post(LOGIN, {"username": "alice", "password": "wrong"}, **IN_WECHAT)
    assert response.status_code == 200 and "用户名或密码不对" in response.content.decode()
    response = client.post(LOGIN, {"username": "alice", "password": PASSWORD}, **IN_WECHAT)
    assert response.status_code == 302 and response["Location"] == settings.LOGIN_REDIRECT_URL

"""Where WeChat gives a unionid, the mini program and the 公众号 reach one account for one
person; without one, each app has its own account as before."""

from __future__ import annotations

import pytest
import requests

from accounts import tokens
from accounts import wechat_login as wechat
from accounts.models import User
from tests.accounts.helpers import IN_WECHAT, miniprogram_openid, open_in_wechat, openid, unionid
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def mini_program_login(client, sandbox_url, **who) -> User:
    """wx.login() in the sandbox for `who` ({"user": ...} or {"openid": ...}), then our login."""
    code = requests.post(sandbox_url + "mp/login-code", json=who, timeout=10).json()["code"]
    answer = client.post("/api/mp/login", {"code": code}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    return tokens.user_for(answer.json()["token"])


def gzh_quick_login(client, browser="alice") -> User:
    open_in_wechat(client, "/accounts/login/", browser)
    client.post("/accounts/wechat/quick-login/", **IN_WECHAT)
    return User.objects.get(pk=client.session["_auth_user_id"])


# -- the sandbox plays WeChat with both apps linked to one open-platform account ----------


def test_the_sandbox_gives_one_person_one_unionid_in_both_apps(sandbox_url, wxoauth):
    minted = requests.post(sandbox_url + "mp/login-code", json={"user": "alice"}, timeout=10).json()
    session = wechat.mini_program_session(minted["code"])
    assert session["openid"] == miniprogram_openid("alice") and session["unionid"] == unionid("alice")
    answer = requests.get(wxoauth.authorize_url, cookies={"sandbox_wx_user": "alice"}, allow_redirects=False, timeout=10)
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    assert wechat.oauth_identity(code) == (openid("alice"), unionid("alice"))
    assert openid("alice") != miniprogram_openid("alice")  # openids are per app; the unionid is per person
    assert unionid("alice") != unionid("bob")


def test_a_mini_program_openid_the_sandbox_knows_no_person_for_has_no_unionid(sandbox_url):
    minted = requests.post(sandbox_url + "mp/login-code", json={"openid": "oMiniNoUnion0001"}, timeout=10).json()
    assert "unionid" not in minted
    assert "unionid" not in wechat.mini_program_session(minted["code"])


# -- one person, one account -----------------------------------------------------------------


def test_a_mini_program_user_signing_in_to_the_gzh_reaches_the_same_account(client, sandbox_url):
    mini = mini_program_login(client, sandbox_url, user="alice")
    assert mini.unionid == unionid() and mini.openid is None
    response = open_in_wechat(client, "/accounts/login/?next=/orders/")
    assert response.status_code == 200 and client.session["_auth_user_id"] == str(mini.pk)
    mini.refresh_from_db()
    assert mini.openid == openid() and User.objects.count() == 1


def test_a_gzh_user_logging_in_from_the_mini_program_reaches_the_same_account(client, sandbox_url):
    gzh = gzh_quick_login(client)
    assert gzh.unionid == unionid()
    mini = mini_program_login(client, sandbox_url, user="alice")
    assert mini.pk == gzh.pk
    gzh.refresh_from_db()
    assert gzh.miniprogram_openid == miniprogram_openid() and gzh.openid == openid() and User.objects.count() == 1


def test_a_password_account_that_binds_its_wechat_is_reached_from_the_mini_program(client, sandbox_url):
    user = make_user("bob")
    client.force_login(user)
    open_in_wechat(client, "/accounts/wechat/authorize/?next=/recharge/")
    user.refresh_from_db()
    assert user.unionid == unionid()
    assert mini_program_login(client, sandbox_url, user="alice").pk == user.pk


def test_another_person_gets_another_account(client, sandbox_url):
    gzh = gzh_quick_login(client, browser="alice")
    assert mini_program_login(client, sandbox_url, user="bob").pk != gzh.pk


def test_the_unionid_is_stored_on_an_account_that_had_none(client, sandbox_url):
    old = make_user("old-mini", miniprogram_openid=miniprogram_openid())
    assert mini_program_login(client, sandbox_url, user="alice").pk == old.pk
    old.refresh_from_db()
    assert old.unionid == unionid()


def test_the_account_holding_this_apps_openid_is_never_traded_for_the_unionids(client, sandbox_url):
    # Two accounts from before unionids were kept: the 公众号 one and the mini program's.
    gzh = make_user("gzh", openid=openid())
    mini = make_user("mini", miniprogram_openid=miniprogram_openid(), unionid=unionid())
    response = open_in_wechat(client, "/accounts/login/?next=/orders/")
    assert response.status_code == 200 and client.session["_auth_user_id"] == str(gzh.pk)
    gzh.refresh_from_db()
    mini.refresh_from_db()
    assert gzh.unionid is None and mini.unionid == unionid() and mini.openid is None


def test_without_a_unionid_each_app_keeps_its_own_account_as_before(client, sandbox_url, monkeypatch):
    real = wechat.oauth_identity
    monkeypatch.setattr(wechat, "oauth_identity", lambda code: (real(code)[0], None))
    gzh = gzh_quick_login(client)
    assert gzh.unionid is None
    mini = mini_program_login(client, sandbox_url, openid=miniprogram_openid())
    assert mini.pk != gzh.pk and mini.unionid is None and User.objects.count() == 2


def test_a_name_is_never_used_to_match_accounts(client, sandbox_url):
    make_user(f"wx_{miniprogram_openid()}")  # someone registered the name the mini program would pick
    mini = mini_program_login(client, sandbox_url, user="alice")
    assert mini.username != f"wx_{miniprogram_openid()}" and mini.username.startswith("wx_")
    assert User.objects.get(username=f"wx_{miniprogram_openid()}").miniprogram_openid is None

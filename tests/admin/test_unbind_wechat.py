"""An operator unbinds a user's WeChat (解绑微信): on the record, with a reason; the person binds
again at their next sign-in (docs/paying.md)."""

from __future__ import annotations

import pytest

from accounts.models import User, WeChatUnbinding
from tests.admin import operator
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def unbind_url(user: User) -> str:
    return f"/admin/accounts/user/{user.pk}/unbind/"


def test_an_operator_unbinds_the_official_account_wechat_with_a_reason_on_the_record():
    user = make_user("alice", openid="oAlice", miniprogram_openid="oMiniAlice", unionid="uAlice")
    staff, client = operator("fixer", "accounts.view_user", "accounts.unbind_wechat")
    page = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert 'data-testid="unbind"' in page
    assert "oAlice" in client.get(unbind_url(user)).content.decode()
    client.post(unbind_url(user), {"app": "openid", "reason": "绑错了微信，用户来电核实"})
    user.refresh_from_db()
    # The mini program is still bound: the unionid stays (it is the person's, in both apps).
    assert (user.openid, user.miniprogram_openid, user.unionid) == (None, "oMiniAlice", "uAlice")
    record = WeChatUnbinding.objects.get()
    assert (record.user, record.app, record.openid, record.reason, record.operator) == (
        user,
        "openid",
        "oAlice",
        "绑错了微信，用户来电核实",
        staff,
    )


def test_the_last_app_unbound_takes_the_unionid_too_and_a_new_wechat_can_bind():
    from accounts.binding import bind_openid

    user = make_user("bob", openid="oBob", unionid="uBob")
    user.unbind_wechat("openid", None, "换了微信号")
    user.refresh_from_db()
    assert (user.openid, user.unionid) == (None, None)
    assert WeChatUnbinding.objects.get().unionid == "uBob"
    assert bind_openid(user, "oBobNew", "uBobNew") is None  # binds again at the next sign-in


def test_a_reason_is_required_and_nothing_changes_without_one():
    user = make_user("carol", openid="oCarol")
    _, client = operator("fixer", "accounts.view_user", "accounts.unbind_wechat")
    answer = client.post(unbind_url(user), {"app": "openid", "reason": ""})
    assert "请填写解绑原因" in answer.content.decode()
    user.refresh_from_db()
    assert user.openid == "oCarol" and not WeChatUnbinding.objects.exists()


def test_without_the_permission_there_is_no_button_and_no_unbinding():
    user = make_user("dave", openid="oDave")
    _, client = operator("viewer", "accounts.view_user", "accounts.change_user")
    assert 'data-testid="unbind"' not in client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert client.post(unbind_url(user), {"app": "openid", "reason": "x"}).status_code == 403
    user.refresh_from_db()
    assert user.openid == "oDave"


def test_an_account_with_no_password_and_no_other_wechat_is_not_unbound():
    from accounts.binding import create_wechat_user

    user = create_wechat_user("openid", "oQuick", "uQuick")  # 微信快捷登录: no password
    with pytest.raises(ValueError, match="没有设置密码"):
        user.unbind_wechat("openid", None, "换微信")
    user.refresh_from_db()
    assert user.openid == "oQuick" and not WeChatUnbinding.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_session_from_before_the_unbinding_does_not_bind_the_wechat_back(client, sandbox_url):
    from django.utils import timezone

    from tests.accounts.helpers import openid, wechat_redirect

    user = make_user("bob", openid=openid("bob"))
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    client.force_login(user)  # the lost phone's session
    user.refresh_from_db()
    user.unbind_wechat("openid", None, "手机丢失")
    start = client.get("/accounts/wechat/authorize/", {"next": "/recharge/"})["Location"]
    answer = client.get(wechat_redirect(start, browser="bob"))
    assert answer["Location"].startswith("/accounts/login/") and "_auth_user_id" not in client.session
    user.refresh_from_db()
    assert user.openid is None

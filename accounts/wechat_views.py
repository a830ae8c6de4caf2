"""网页授权 (snsapi_base): bind the 公众号 openid to an account, sign its owner in, or make a
new account for it (微信快捷登录)."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts import wechat_login as wechat
from accounts.binding import (
    FAILED_KEY,
    PENDING_OPENID_KEY,
    SIGNED_OUT_KEY,
    bind_openid,
    create_wechat_user,
    find_wechat_user,
    keep_pending,
    pending_identity,
    remember_current,
    unbound_since_sign_in,
)
from accounts.models import User
from accounts.views import safe_next, wechat_signin_url
from common import support

logger = logging.getLogger(__name__)

STATE_KEY = "wechat_oauth"
CODE_MESSAGES = {
    "40029": "微信授权码无效或已过期，请重新授权。",
    "40163": "这个微信授权码已经用过了，请重新授权。",
    "NETWORK": "暂时连不上微信，请稍后重试。",
}


def _problem(request, title: str, message: str, retry_next: str | None = None, status: int = 400, switch: bool = False):
    """A 网页授权 that could not be used. `switch`: this WeChat belongs to another account (or the
    account to another WeChat), so the way on is 退出，用当前微信登录, not asking WeChat again."""
    retry = None
    if retry_next is not None:
        retry = reverse("accounts:wechat_authorize") + "?" + urlencode({"next": retry_next})
    return render(
        request,
        "accounts/wechat_problem.html",
        {"title": title, "message": message, "retry_url": retry, "switch": switch},
        status=status,
    )


def _failed(request, saved: dict, title: str, message: str, status: int = 400):
    """WeChat did not say who this is. From the sign-in page, back there: a password still works."""
    request.session[FAILED_KEY] = True
    if saved.get("signin"):
        messages.error(request, f"{message}也可以用用户名和密码登录。")
        return redirect(reverse("accounts:login") + "?" + urlencode({"next": saved["next"], "wechat": "failed"}))
    return _problem(request, title, message, saved["next"], status=status)


def _same_state(given: str, expected: str) -> bool:
    # As bytes: compare_digest refuses text with non-ASCII characters (a TypeError, so a 500).
    given_bytes = given.encode()
    return 0 < len(given_bytes) <= 128 and secrets.compare_digest(given_bytes, expected.encode())


def _sign_in(request, user: User, openid: str, unionid: str | None, next_path: str):
    if not user.is_active:
        return _problem(request, "账户已停用", "这个微信绑定的账户已停用。" + support.ask("如有疑问，"), status=403)
    # Found by its unionid (first seen in the mini program), the account gets this openid too.
    refused = bind_openid(user, openid, unionid)
    if refused:
        logger.warning("user %s signed in by unionid keeps its other 公众号 openid", user.pk)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    for key in (PENDING_OPENID_KEY, SIGNED_OUT_KEY):
        request.session.pop(key, None)
    remember_current(request, openid)
    return redirect(next_path)


@require_GET
def authorize(request):
    """Start 网页授权 with a one-time state tied to this session."""
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {"state": state, "next": safe_next(request), "signin": request.GET.get("signin") == "1"}
    # Asked for (a tap, or the sign-in page on its own): the answer may sign a bound WeChat in.
    request.session.pop(SIGNED_OUT_KEY, None)
    redirect_uri = settings.SITE_URL + reverse("accounts:wechat_callback")
    return redirect(wechat.authorize_url(redirect_uri, state))


@require_GET
def callback(request):
    saved = request.session.pop(STATE_KEY, None)
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    next_path = saved["next"] if saved else settings.LOGIN_REDIRECT_URL
    if not saved or not _same_state(state, saved["state"]):
        logger.warning("wechat oauth callback with a missing, forged or reused state")
        return _problem(request, "授权已失效", "这个授权链接已失效或不是从本站发起的，请重新授权。", next_path)
    if not code or len(code) > 256:
        return _failed(request, saved, "未完成授权", "没有收到微信的授权，请重新授权。")
    try:
        openid, unionid = wechat.oauth_identity(code)
    except wechat.WeChatError as exc:
        logger.warning("wechat oauth code exchange failed: %s", exc.code)
        message = CODE_MESSAGES.get(exc.code, "微信授权失败，请稍后重试。")
        return _failed(request, saved, "微信授权失败", message, status=502 if exc.retryable else 400)
    request.session.pop(FAILED_KEY, None)
    remember_current(request, openid)
    user = request.user
    if user.is_authenticated:
        if user.openid and user.openid != openid:
            # Another WeChat than the account's: the pages say so and do not offer it JSAPI.
            return redirect(next_path)
        if unbound_since_sign_in(user, openid):
            # An operator took this WeChat off the account after this session signed in (a lost
            # phone, a wrong binding): it is not bound back silently; sign in again.
            logout(request)
            messages.error(request, "该微信已从账户解绑，请重新登录")
            return redirect(reverse("accounts:login") + "?" + urlencode({"next": next_path}))
        refused = bind_openid(user, openid, unionid)
        if refused:
            return _problem(request, "无法绑定微信", refused, status=409, switch=True)
        return redirect(next_path)
    owner = find_wechat_user("openid", openid, unionid)
    if owner is not None:
        return _sign_in(request, owner, openid, unionid, next_path)
    # Nobody's yet: the sign-in page offers 微信快捷登录, or binds it to the account signed in to.
    keep_pending(request, openid, unionid)
    return redirect(reverse("accounts:login") + "?" + urlencode({"next": next_path, "wechat": "1"}))


@require_POST
def switch(request):
    """退出，用当前微信登录: sign the account out and sign in as the WeChat in use (its own
    account, or the sign-in page's 微信快捷登录 for a WeChat nobody has yet)."""
    next_path = safe_next(request)
    logout(request)
    return redirect(wechat_signin_url(next_path))


@require_POST
def quick_login(request):
    """微信快捷登录: an account for the WeChat this visitor brought from 网页授权, with no password."""
    next_path = safe_next(request)
    if request.user.is_authenticated:  # a second tap after the first signed in
        return redirect(next_path)
    pending = pending_identity(request)
    if pending is None:  # the session lost it (expired): ask WeChat again
        return redirect(wechat_signin_url(next_path))
    openid, unionid = pending
    # Someone may have bound it meanwhile (another tab); then that account is the one.
    user = find_wechat_user("openid", openid, unionid) or create_wechat_user("openid", openid, unionid)
    return _sign_in(request, user, openid, unionid, next_path)

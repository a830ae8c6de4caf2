"""The mini program's login: wx.login() code -> code2session -> our bearer token."""

from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts import tokens
from accounts import wechat_login as wechat
from accounts.binding import bind, create_wechat_user, find_wechat_user
from accounts.models import User
from common import ratelimit
from common.api import json_object, wechat_error
from common.http import client_ip, json_error, json_ok

logger = logging.getLogger(__name__)


def bearer_required(view):
    """Authenticate by `Authorization: Bearer <token>`; 401 otherwise. No cookies, no CSRF."""

    @functools.wraps(view)
    @csrf_exempt
    def wrapped(request, *args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        user = tokens.user_for(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            return json_error("login_required", 401, "登录已失效，请重新登录")
        request.user = user
        return view(request, *args, **kwargs)

    return wrapped


def _user_for_openid(openid: str, session_key: str, unionid: str | None = None) -> User:
    """The account of this mini-program user: by openid, else by the unionid they share with
    the 公众号 (which then gets this openid too), else a new one."""
    user = find_wechat_user("miniprogram_openid", openid, unionid)
    if user is None:
        user = create_wechat_user("miniprogram_openid", openid, unionid, username=f"wx_{openid}"[:150])
    elif bind(user, "miniprogram_openid", openid, unionid):
        # The unionid's account has another mini-program openid: WeChat never does that, so
        # this openid keeps an account of its own rather than taking that one over.
        logger.warning("unionid of user %s came with another mini-program openid", user.pk)
        user = create_wechat_user("miniprogram_openid", openid, None, username=f"wx_{openid}"[:150])
    if user.miniprogram_session_key != session_key:
        User.objects.filter(pk=user.pk).update(miniprogram_session_key=session_key)
    return user


@csrf_exempt
@require_POST
def login(request):
    data = json_object(request)
    code = data.get("code") if data is not None else None
    if not isinstance(code, str) or not 1 <= len(code) <= 128:
        return json_error("invalid_request", 400, "缺少 wx.login() 返回的 code")
    # Each login is a call to WeChat (jscode2session): a flood of junk codes must not become
    # one. Per address, and a carrier NAT may hold many people: hence a setting.
    if not ratelimit.allow(f"miniprogram_login:ip:{client_ip(request)}", settings.MP_LOGINS_PER_MINUTE_PER_ADDRESS, 60):
        return json_error("too_many_requests", 429)
    try:
        session = wechat.mini_program_session(code)
    except wechat.WeChatError as exc:
        logger.info("mini-program login refused: %s", exc.code)
        if exc.code in ("40029", "40163"):
            return json_error("invalid_code", 400, "登录凭证无效或已使用，请重新调用 wx.login()")
        return wechat_error(exc)
    openid, session_key = session.get("openid"), session.get("session_key", "")
    if not openid:
        return json_error("wechat_error", 502, detail="NO_OPENID")
    user = _user_for_openid(openid, session_key, session.get("unionid") or None)
    if not user.is_active:
        return json_error("login_required", 401, "账户已停用")
    return json_ok({"token": tokens.issue(user), "expires_in": settings.MP_TOKEN_TTL_SECONDS})

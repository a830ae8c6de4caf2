"""网页授权 (snsapi_base): bind the 公众号 openid to an account, or sign its owner in."""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from accounts.binding import PENDING_OPENID_KEY, bind_openid
from accounts.models import User
from accounts.views import safe_next
from payments import wechat

logger = logging.getLogger(__name__)

STATE_KEY = "wechat_oauth"
FAILED_KEY = "wechat_oauth_failed"
CODE_MESSAGES = {
    "40029": "微信授权码无效或已过期，请重新授权。",
    "40163": "这个微信授权码已经用过了，请重新授权。",
    "NETWORK": "暂时连不上微信，请稍后重试。",
}


def _problem(request, title: str, message: str, retry_next: str | None = None, status: int = 400):
    retry = None
    if retry_next is not None:
        retry = reverse("accounts:wechat_authorize") + "?" + urlencode({"next": retry_next})
    return render(request, "accounts/wechat_problem.html", {"title": title, "message": message, "retry_url": retry},
                  status=status)


@require_GET
def authorize(request):
    """Start 网页授权 with a one-time state tied to this session."""
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {"state": state, "next": safe_next(request)}
    redirect_uri = settings.SITE_URL + reverse("accounts:wechat_callback")
    return redirect(wechat.authorize_url(redirect_uri, state))


@require_GET
def callback(request):
    saved = request.session.pop(STATE_KEY, None)
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    next_path = saved["next"] if saved else settings.LOGIN_REDIRECT_URL
    if not saved or not state or len(state) > 128 or not secrets.compare_digest(state, saved["state"]):
        logger.warning("wechat oauth callback with a missing, forged or reused state")
        return _problem(request, "授权已失效", "这个授权链接已失效或不是从本站发起的，请重新授权。", next_path)
    if not code or len(code) > 256:
        request.session[FAILED_KEY] = True
        return _problem(request, "未完成授权", "没有收到微信的授权，请重新授权。", next_path)
    try:
        openid = wechat.openid_from_oauth_code(code)
    except wechat.WeChatError as exc:
        logger.warning("wechat oauth code exchange failed: %s", exc.code)
        request.session[FAILED_KEY] = True
        message = CODE_MESSAGES.get(exc.code, "微信授权失败，请稍后重试。")
        return _problem(request, "微信授权失败", message, next_path, status=502 if exc.retryable else 400)
    request.session.pop(FAILED_KEY, None)
    user = request.user
    if user.is_authenticated:
        refused = bind_openid(user, openid)
        if refused:
            return _problem(request, "无法绑定微信", refused, status=409)
        return redirect(next_path)
    owner = User.objects.filter(openid=openid, is_active=True).first()
    if owner is not None:
        login(request, owner, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(next_path)
    request.session[PENDING_OPENID_KEY] = openid
    return redirect(reverse("accounts:login") + "?" + urlencode({"next": next_path, "wechat": "1"}))

"""Binding a 公众号 openid to an account: the rules both sign-in paths share."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User

PENDING_OPENID_KEY = "wechat_pending_openid"


def bind_openid(user: User, openid: str) -> str | None:
    """Bind `openid` to `user`; None when bound, else the Chinese reason it was refused."""
    if user.openid == openid:
        return None
    if user.openid:
        return "你的账户已经绑定了另一个微信，不能更换。如需更换请联系客服。"
    if User.objects.filter(openid=openid).exclude(pk=user.pk).exists():
        return "这个微信已经绑定了其他账户。请用那个账户登录，或换一个微信。"
    try:
        with transaction.atomic():
            updated = User.objects.filter(pk=user.pk, openid__isnull=True).update(openid=openid)
    except IntegrityError:
        return "这个微信已经绑定了其他账户。请用那个账户登录，或换一个微信。"
    if not updated:
        return "你的账户已经绑定了另一个微信，不能更换。如需更换请联系客服。"
    user.openid = openid
    return None


def bind_pending_openid(request, user: User) -> str | None:
    """After a visitor who came through 网页授权 signs in or registers, bind what they brought."""
    openid = request.session.pop(PENDING_OPENID_KEY, None)
    if not openid:
        return None
    return bind_openid(user, openid)

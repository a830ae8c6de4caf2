"""WeChat identities and accounts: the rules every sign-in path shares (网页授权, the
sign-in and register pages, 微信快捷登录, the mini program).

An account holds at most one openid per app (`openid` for the 公众号, `miniprogram_openid` for the
mini program) and, where WeChat gives one, the person's `unionid`, which is the same in
both apps. Each is unique; none is ever replaced silently.
"""

from __future__ import annotations

import logging
import secrets

from django.db import IntegrityError, transaction

from accounts.models import User
from common import support

logger = logging.getLogger(__name__)

# Session keys. PENDING: the WeChat identity a visitor brought from 网页授权 before signing in
# ({"openid", "unionid"}), bound once they sign in, register or use 微信快捷登录.
PENDING_OPENID_KEY = "wechat_pending_openid"
# 网页授权 failed in this session: pages stop sending the visitor through it on their own.
FAILED_KEY = "wechat_oauth_failed"
# The visitor signed out inside WeChat: the sign-in page waits for a tap before signing a
# bound WeChat back in (else 退出登录 would undo itself at once).
SIGNED_OUT_KEY = "wechat_signed_out"
# The 公众号 openid of the WeChat this browser is (网页授权 said so in this session): only that
# WeChat may pay a JSAPI order of the account signed in (docs/paying.md).
CURRENT_OPENID_KEY = "wechat_current_openid"

# paying_wechat(): the WeChat in use is the account's, another one, or not known yet.
OWN, OTHER, UNKNOWN = "own", "other", "unknown"

BOUND_ELSEWHERE = "这个微信已经绑定了其他账户。请用那个账户登录，或换一个微信。"
ALREADY_BOUND = "你的账户已经绑定了另一个微信，不能更换。"
APPS = ("openid", "miniprogram_openid")


def already_bound() -> str:
    """ALREADY_BOUND, and how to reach support to change it (when the site says)."""
    return ALREADY_BOUND + support.ask("如需更换，")


def find_wechat_user(field: str, openid: str, unionid: str | None = None) -> User | None:
    """The account of a WeChat user of one app (`field`: "openid" or "miniprogram_openid"), or None.

    The account that holds this app's openid first: it is this exact identity, and moving
    it to another account would strand that one's balance (accounts bound before unionids
    were kept). Then the unionid, so that whichever app a person used first, the other
    reaches the same account. Never anything else (a name, a nickname): guessing would hand
    one person's balance to another.
    """
    assert field in APPS
    user = User.objects.filter(**{field: openid}).first()
    if user is None and unionid:
        user = User.objects.filter(unionid=unionid).first()
    return user


def bind(user: User, field: str, openid: str, unionid: str | None = None) -> str | None:
    """Bind this app's `openid` (and the `unionid`, if it is free) to `user`: None when bound,
    else the Chinese reason it was refused."""
    assert field in APPS
    current = getattr(user, field)
    if current and current != openid:
        return already_bound()
    if not current:
        if User.objects.filter(**{field: openid}).exclude(pk=user.pk).exists():
            return BOUND_ELSEWHERE
        try:
            with transaction.atomic():
                updated = User.objects.filter(pk=user.pk, **{f"{field}__isnull": True}).update(**{field: openid})
        except IntegrityError:
            return BOUND_ELSEWHERE
        if not updated:
            return already_bound()
        setattr(user, field, openid)
    _keep_unionid(user, unionid)
    return None


def bind_openid(user: User, openid: str, unionid: str | None = None) -> str | None:
    """Bind a 公众号 openid to `user` (see `bind`)."""
    return bind(user, "openid", openid, unionid)


def _keep_unionid(user: User, unionid: str | None) -> None:
    if not unionid or user.unionid == unionid:
        return
    if user.unionid:
        logger.warning("user %s already has another unionid; kept it", user.pk)
        return
    try:
        with transaction.atomic():
            updated = User.objects.filter(pk=user.pk, unionid__isnull=True).update(unionid=unionid)
    except IntegrityError:
        # Another account has it (each app's account was made before unionids were kept):
        # both stay as they are; an operator can tell them apart in the admin.
        logger.info("unionid of user %s is already another account's; not stored", user.pk)
        return
    if updated:
        user.unionid = unionid


def create_wechat_user(field: str, openid: str, unionid: str | None = None, username: str | None = None) -> User:
    """A new account for a WeChat user, with no password (they sign in through WeChat), or
    the account that got there first when the same person arrives twice at once."""
    for _ in range(3):
        user = User(username=username or f"wx_{secrets.token_hex(4)}", unionid=unionid or None, **{field: openid})
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
            return user
        except IntegrityError:  # the same person twice at once, or the name is taken
            winner = find_wechat_user(field, openid, unionid)
            if winner is not None:
                return winner
            username = None
    raise IntegrityError("no free wx_ username after 3 tries")


def unbound_since_sign_in(user: User, openid: str) -> bool:
    """An operator unbound this openid from the account after it last signed in: a session
    from before must not bind it back by itself."""
    from accounts.models import WeChatUnbinding

    unbound = WeChatUnbinding.objects.filter(user=user, openid=openid)
    if user.last_login is not None:
        unbound = unbound.filter(created_at__gt=user.last_login)
    return unbound.exists()


def remember_current(request, openid: str) -> None:
    request.session[CURRENT_OPENID_KEY] = openid


def paying_wechat(request) -> str:
    """Whether the WeChat this browser is (网页授权 told us in this session) is the one bound to
    the account signed in: OWN, OTHER (another WeChat, or the account has none), or UNKNOWN."""
    current = request.session.get(CURRENT_OPENID_KEY)
    if not isinstance(current, str) or not current:
        return UNKNOWN
    return OWN if current == request.user.openid else OTHER


def pending_identity(request) -> tuple[str, str | None] | None:
    """The (openid, unionid) this visitor brought from 网页授权 and has not bound yet."""
    pending = request.session.get(PENDING_OPENID_KEY)
    if isinstance(pending, str):  # kept by the previous version: an openid alone
        return pending, None
    if isinstance(pending, dict) and pending.get("openid"):
        return pending["openid"], pending.get("unionid")
    return None


def keep_pending(request, openid: str, unionid: str | None) -> None:
    request.session[PENDING_OPENID_KEY] = {"openid": openid, "unionid": unionid}


def bind_pending_openid(request, user: User) -> str | None:
    """After a visitor who came through 网页授权 signs in or registers, bind what they brought."""
    pending = pending_identity(request)
    request.session.pop(PENDING_OPENID_KEY, None)
    if pending is None:
        return None
    return bind_openid(user, *pending)

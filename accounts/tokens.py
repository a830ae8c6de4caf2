"""Signed, expiring bearer tokens for the mini program (django.core.signing, SECRET_KEY)."""

from __future__ import annotations

from django.conf import settings
from django.core import signing

from accounts.models import User

SALT = "wxrecharge.mp-token"


def issue(user: User) -> str:
    # The mini-program openid is part of the token: it stops working if the binding changes.
    return signing.dumps({"u": user.pk, "o": user.miniprogram_openid}, salt=SALT, compress=True)


def user_for(token: str) -> User | None:
    """The active user a token names, or None (missing, tampered, expired, user gone)."""
    if not token or len(token) > 512:
        return None
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.MP_TOKEN_TTL_SECONDS)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    if not isinstance(data, dict):
        return None
    user = User.objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or not user.miniprogram_openid or user.miniprogram_openid != data.get("o"):
        return None
    return user

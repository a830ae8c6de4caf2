"""Test data, made the way the site makes it."""

from __future__ import annotations

import itertools

from accounts.models import User

PASSWORD = "correct-horse-battery-9"
_counter = itertools.count(1)


def make_user(username: str | None = None, **fields) -> User:
    user = User(username=username or f"user{next(_counter)}", **fields)
    user.set_password(PASSWORD)
    user.save()
    return user


def make_order(user: User, amount: int = 1000, channel: str = "jsapi", **fields):
    from datetime import timedelta

    from django.utils import timezone

    from orders.models import RechargeOrder

    now = timezone.now()
    defaults = {
        "out_trade_no": RechargeOrder.new_out_trade_no(channel),
        "openid": user.openid or "oTestUser",
        "expires_at": now + timedelta(minutes=30),
    }
    return RechargeOrder.objects.create(user=user, amount=amount, channel=channel, **{**defaults, **fields})

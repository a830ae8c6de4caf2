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

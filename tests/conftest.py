from __future__ import annotations

import pytest

from tests.factories import make_user


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client

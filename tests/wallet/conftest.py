"""The wallet's fixtures: members with money, API clients and a caller for /api/v1/."""

from __future__ import annotations

import json

import pytest

from orders.models import LedgerEntry, OpenLot
from tests.factories import make_user
from wallet.models import ApiClient, MemberCode

ALL_SCOPES = ["charges:write", "charges:read", "members:read"]


def fund(user, amount: int) -> None:
    """Put `amount` fen on a member's balance, as an operator's adjustment would."""
    LedgerEntry.post(user.pk, amount, LedgerEntry.Kind.ADJUSTMENT, reason="测试充值", lots=OpenLot(gift=True))
    user.refresh_from_db()


class Api:
    """Calls /api/v1/ as one client's server does."""

    def __init__(self, client, secret: str):
        self.client, self.secret = client, secret

    def call(self, method: str, path: str, body=None, key: str | None = None, secret: str | None = None, raw=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {secret or self.secret}"}
        if key is not None:
            headers["HTTP_IDEMPOTENCY_KEY"] = key
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return self.client.generic(method, path, data, content_type="application/json", **headers)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def charge(self, code: str, amount, secret: str | None = None, key: str | None = None, **fields):
        return self.post("/api/v1/charges", {"member_code": code, "amount": amount, **fields}, secret=secret, key=key)


@pytest.fixture
def pos(db, client):
    """A counter's API client with the usual scopes."""
    api_client, secret = ApiClient.issue("前台收银", ALL_SCOPES)
    api = Api(client, secret)
    api.api_client = api_client
    return api


@pytest.fixture
def member(db):
    user = make_user("member", openid="oMember")
    fund(user, 3000)
    return user


@pytest.fixture
def code(member) -> str:
    return MemberCode.current(member).code

"""Spending under concurrency, on PostgreSQL (row locks across real connections): one code,
one charge; a balance never below zero; one Idempotency-Key, one charge; reversals never
beyond the charge."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import make_user
from tests.helpers import NEEDS_ROW_LOCKS, race
from tests.wallet.conftest import ALL_SCOPES, fund
from wallet.models import ApiClient, Charge, MemberCode

pytestmark = [*NEEDS_ROW_LOCKS, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def secret():
    return ApiClient.issue("并发收银", [*ALL_SCOPES, "charges:by_member_id"])[1]


def post(secret: str, path: str, body: dict, key: str | None = None) -> int:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return Client().post(path, json.dumps(body), content_type="application/json", **headers).status_code


def test_two_counters_scanning_one_code_at_once_charge_it_once(secret):
    user = make_user("twice", openid="oTwice")
    fund(user, 5000)
    code = MemberCode.current(user).code
    results = race([lambda: post(secret, "/api/v1/charges", {"member_code": code, "amount": 800})] * 2)
    assert sorted(results) == [201, 404]
    user.refresh_from_db()
    assert user.balance == 4200 and Charge.objects.count() == 1


def test_fifty_charges_at_once_never_take_the_balance_below_zero(secret):
    user = make_user("fifty", openid="oFifty")
    fund(user, 3000)
    body = {"member_id": user.pk, "amount": 100}
    results = race([lambda: post(secret, "/api/v1/charges", body)] * 50)
    assert sorted(results) == [201] * 30 + [402] * 20
    user.refresh_from_db()
    assert user.balance == 0 and Charge.objects.count() == 30  # and the invariant check: balance == ledger


def test_one_idempotency_key_sent_ten_times_at_once_charges_once(secret):
    user = make_user("tenkeys", openid="oTenKeys")
    fund(user, 3000)
    body = {"member_id": user.pk, "amount": 700}
    results = race([lambda: post(secret, "/api/v1/charges", body, key="same-key")] * 10)
    assert set(results) <= {201, 409} and 201 in results
    user.refresh_from_db()
    assert user.balance == 2300 and Charge.objects.count() == 1
    assert post(secret, "/api/v1/charges", body, key="same-key") == 201  # the first answer, again
    assert Charge.objects.count() == 1


def test_two_reversals_at_once_never_give_back_more_than_was_charged(secret):
    user = make_user("reverse", openid="oReverse")
    fund(user, 3000)
    charge = Charge.create(amount=1000, user_id=user.pk)
    results = race([lambda: post(secret, f"/api/v1/charges/{charge.number}/reversals", {"amount": 600})] * 2)
    assert results.count(404) == 2  # not this client's charge: made without one
    charge.client = ApiClient.objects.get()
    charge.save()
    results = race([lambda: post(secret, f"/api/v1/charges/{charge.number}/reversals", {"amount": 600})] * 2)
    assert sorted(results) == [201, 422]
    charge.refresh_from_db()
    user.refresh_from_db()
    assert charge.reversed_amount == 600 and user.balance == 2600

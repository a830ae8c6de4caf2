"""The balance cap (BALANCE_CAP_FEN, docs/product.md#the-balance-cap): a recharge that would
take the balance over it, counting the orders that can still be paid, is refused before any
order is placed, with what may still be recharged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from orders.models import LedgerEntry, OpenLot, RechargeOrder
from tests.factories import make_order, make_user
from tests.helpers import NEEDS_ROW_LOCKS, race

pytestmark = pytest.mark.django_db(transaction=True)
PREPAY = "/payments/jsapi/prepay/"


def prepay(client, yuan: str):
    return client.post(PREPAY, {"amount": yuan}, content_type="application/json")


@pytest.fixture
def capped(settings, payer):
    settings.BALANCE_CAP_FEN = 10000  # ¥100.00
    LedgerEntry.post(payer.pk, 9000, LedgerEntry.Kind.ADJUSTMENT, reason="已有余额", lots=OpenLot(gift=True))
    return payer


def test_a_recharge_over_the_cap_is_refused_before_any_order_with_what_is_still_allowed(payer_client, capped):
    answer = prepay(payer_client, "10.01")
    body = answer.json()
    assert answer.status_code == 422 and body["error"] == "balance_cap" and body["allowed_fen"] == 1000
    assert "¥100.00" in body["message"] and "¥10.00" in body["message"]
    assert not RechargeOrder.objects.exists()
    assert prepay(payer_client, "10.00").status_code == 200  # up to the cap exactly


def test_orders_still_payable_count_toward_the_cap(payer_client, capped):
    assert prepay(payer_client, "6.00").status_code == 200
    second = prepay(payer_client, "5.00")
    assert second.status_code == 422 and second.json()["allowed_fen"] == 400
    assert prepay(payer_client, "6.00").status_code == 200  # the same order again: reused, not counted twice
    assert RechargeOrder.objects.count() == 1


def test_an_expired_order_no_longer_counts_but_one_wechat_reported_paid_does(payer_client, capped, payer):
    make_order(payer, amount=800, expires_at=timezone.now() - timedelta(minutes=1))
    assert prepay(payer_client, "10.00").status_code == 200
    RechargeOrder.objects.filter(amount=1000).update(
        expires_at=timezone.now() - timedelta(minutes=1), paid_reported_at=timezone.now()
    )
    answer = prepay(payer_client, "0.01")
    assert answer.status_code == 422 and answer.json()["allowed_fen"] == 0 and "现在不能再充值" in answer.json()["message"]


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_two_orders_placed_at_once_cannot_together_pass_the_cap(capped, payer):

    def place(yuan):
        client = Client()
        client.force_login(payer)
        return prepay(client, yuan).status_code

    results = race([lambda: place("6.00"), lambda: place("7.00")])
    assert sorted(results) == [200, 422]
    assert RechargeOrder.objects.count() == 1


def test_the_mini_program_is_capped_the_same_way(settings, sandbox_url):
    settings.BALANCE_CAP_FEN = 10000
    user = make_user("mini", miniprogram_openid="oMiniCap00000000000000000001")
    LedgerEntry.post(user.pk, 9000, LedgerEntry.Kind.ADJUSTMENT, reason="已有余额", lots=OpenLot(gift=True))
    answer = Client().post(
        "/api/mp/prepay", {"amount": "10.01"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {tokens.issue(user)}"
    )
    assert answer.status_code == 422 and answer.json()["error"] == "balance_cap" and answer.json()["allowed_fen"] == 1000

"""Recharge packages and tiers (docs/stored-value.md#packages), as the recharge page and the
mini program place them: the order keeps what it promised; a package limited per user gives
its bonus that many times; a custom amount gets the best tier it reaches."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from offers.models import BonusTier, Package
from orders.models import LedgerEntry, Lot, RechargeOrder
from tests.factories import make_order
from tests.helpers import NEEDS_ROW_LOCKS, race

pytestmark = pytest.mark.django_db(transaction=True)
PREPAY = "/payments/jsapi/prepay/"
_ids = itertools.count(1)


def buy(client, package: Package | int | str):
    return client.post(PREPAY, {"package": getattr(package, "pk", package)}, content_type="application/json")


def pay(order: RechargeOrder) -> None:
    order.pay(f"4200000000{next(_ids):022d}", order.amount, timezone.now())


@pytest.fixture
def hundred(db):
    return Package.objects.create(name="充100送20", price=10000, bonus=2000, bonus_valid_days=365)


@pytest.fixture
def first_recharge(db):
    return Package.objects.create(name="首充礼", price=5000, bonus=5000, per_user_limit=1)


def test_a_package_is_bought_at_its_price_and_the_order_records_what_it_promised(payer_client, hundred):
    answer = buy(payer_client, hundred)
    assert answer.status_code == 200 and answer.json()["amount_fen"] == 10000
    order = RechargeOrder.objects.get()
    assert (order.package, order.amount, order.bonus, order.bonus_valid_days) == (hundred, 10000, 2000, 365)


def test_editing_the_package_while_the_user_pays_changes_nothing_of_the_order(payer_client, payer, hundred):
    buy(payer_client, hundred)
    Package.objects.filter(pk=hundred.pk).update(bonus=100, is_active=False)
    order = RechargeOrder.objects.get()
    pay(order)
    assert LedgerEntry.objects.get(kind=LedgerEntry.Kind.BONUS).amount == 2000
    payer.refresh_from_db()
    assert payer.balance == 12000


def test_a_package_switched_off_or_out_of_its_dates_is_refused_with_a_message(payer_client, hundred):
    Package.objects.filter(pk=hundred.pk).update(is_active=False)
    answer = buy(payer_client, hundred)
    assert answer.status_code == 409 and answer.json()["error"] == "package_unavailable"
    assert "已下架" in answer.json()["message"]
    Package.objects.filter(pk=hundred.pk).update(is_active=True, active_until=timezone.now() - timedelta(minutes=1))
    assert buy(payer_client, hundred).json()["error"] == "package_unavailable"
    assert not RechargeOrder.objects.exists()


@pytest.mark.parametrize("bad", ["abc", -1, 0, True, 1.5, "1e3", "９", 2**70, [1], {"id": 1}])
def test_a_bad_package_number_is_a_clear_400(payer_client, bad):
    answer = buy(payer_client, bad)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_package"


def test_an_unknown_package_is_unavailable(payer_client):
    assert buy(payer_client, 987654).json()["error"] == "package_unavailable"


def test_a_first_recharge_offer_cannot_be_placed_twice(payer_client, payer, first_recharge):
    assert buy(payer_client, first_recharge).status_code == 200
    assert buy(payer_client, first_recharge).status_code == 200  # the same order again (a second tap)
    assert RechargeOrder.objects.count() == 1
    RechargeOrder.objects.update(expires_at=timezone.now() + timedelta(minutes=1))  # too close to reuse
    refused = buy(payer_client, first_recharge)
    assert refused.status_code == 409 and refused.json()["error"] == "package_limit"
    assert "每人限购 1 次" in refused.json()["message"]
    pay(RechargeOrder.objects.get())
    assert buy(payer_client, first_recharge).json()["error"] == "package_limit"


def test_of_two_orders_of_a_first_recharge_offer_paid_only_one_gets_the_bonus(payer, first_recharge):
    # Two orders placed before the limit could see each other (an old order, a second device).
    orders = [make_order(payer, amount=5000, package=first_recharge, bonus=5000, package_limit=1) for _ in range(2)]
    for order in orders:
        pay(order)
    assert [lot.bonus for lot in Lot.objects.order_by("pk")] == [5000, 0]
    payer.refresh_from_db()
    assert payer.balance == 15000


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_two_orders_of_a_first_recharge_offer_paid_at_once_give_the_bonus_once(payer, first_recharge):
    orders = [make_order(payer, amount=5000, package=first_recharge, bonus=5000, package_limit=1) for _ in range(2)]
    results = race([lambda o=o: pay(o) for o in orders])
    assert all(r is None for r in results), results
    assert sorted(Lot.objects.values_list("bonus", flat=True)) == [0, 5000]
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BONUS).count() == 1


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_a_first_recharge_offer_bought_twice_at_once_is_placed_once(payer, first_recharge):
    def tap(channel_client):
        return buy(channel_client, first_recharge).status_code

    clients = []
    for _ in range(2):
        c = Client()
        c.force_login(payer)
        clients.append(c)
    # One of them is placed (or both get the same order); the limit never lets two exist.
    results = race([lambda c=c: tap(c) for c in clients])
    assert set(results) <= {200, 409}
    assert RechargeOrder.objects.filter(package=first_recharge).count() == 1


def test_a_custom_amount_gets_the_best_tier_it_reaches(payer_client, payer):
    BonusTier.objects.create(threshold=50000, bonus=5000)
    BonusTier.objects.create(threshold=100000, bonus=20000, bonus_valid_days=90)
    payer_client.post(PREPAY, {"amount": "1200"}, content_type="application/json")
    order = RechargeOrder.objects.get()
    assert (order.package, order.bonus, order.bonus_valid_days) == (None, 20000, 90)
    payer_client.post(PREPAY, {"amount": "499.99"}, content_type="application/json")
    assert RechargeOrder.objects.get(amount=49999).bonus == 0


def test_the_balance_cap_counts_the_bonus(payer_client, settings, hundred):
    settings.BALANCE_CAP_FEN = 11000
    answer = buy(payer_client, hundred)  # ¥100 + ¥20 would make ¥120
    assert answer.status_code == 422 and answer.json()["error"] == "balance_cap" and "含赠送" in answer.json()["message"]


def test_the_mini_program_lists_the_packages_on_sale_and_the_tiers(payer, hundred, first_recharge):
    Package.objects.create(name="已下架", price=100, is_active=False)
    BonusTier.objects.create(threshold=100000, bonus=20000)
    payer.miniprogram_openid = "oMiniProgramPayer"
    payer.save()
    answer = Client().get("/api/mp/packages", HTTP_AUTHORIZATION=f"Bearer {tokens.issue(payer)}").json()
    assert [p["name"] for p in answer["packages"]] == ["首充礼", "充100送20"]
    assert answer["packages"][1] | {"id": 0} == {
        "id": 0,
        "name": "充100送20",
        "price_fen": 10000,
        "bonus_fen": 2000,
        "bonus_valid_days": 365,
        "per_user_limit": None,
        "label": "充 100 送 20",
    }
    assert answer["tiers"] == [{"threshold_fen": 100000, "bonus_fen": 20000, "bonus_valid_days": None, "label": "满 1000 送 200"}]
    assert Client().get("/api/mp/packages").status_code == 401


def test_a_limited_package_counts_an_order_wechat_reported_paid_but_not_yet_credited(payer_client, first_recharge):
    assert buy(payer_client, first_recharge).status_code == 200
    RechargeOrder.objects.update(paid_reported_at=timezone.now())  # 支付确认中
    refused = buy(payer_client, first_recharge)
    assert refused.status_code == 409 and refused.json()["error"] == "package_limit"


def test_a_limited_package_without_bonus_is_limited_too(payer_client, payer):
    trial = Package.objects.create(name="体验价", price=990, per_user_limit=1)
    assert buy(payer_client, trial).status_code == 200
    pay(RechargeOrder.objects.get())
    assert buy(payer_client, trial).json()["error"] == "package_limit"

"""Recharge offers as a user meets them: the packages on sale and their labels, and the bonus
tier an amount they type earns (docs/packages.md)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from offers.models import BonusTier, Package
from wxproto.beijing import BEIJING

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=BEIJING)
DAY = timedelta(days=1)


def package(name: str = "充100送20", price: int = 10000, bonus: int = 2000, **fields) -> Package:
    return Package.objects.create(name=name, price=price, bonus=bonus, **fields)


def tier(threshold: int, bonus: int, **fields) -> BonusTier:
    return BonusTier.objects.create(threshold=threshold, bonus=bonus, **fields)


# -- on sale --------------------------------------------------------------------------------------


def test_a_package_with_no_window_is_on_sale_until_it_is_switched_off():
    offer = package()
    assert offer.is_on_sale(NOW) and offer.status(NOW) == Package.Status.ON_SALE and offer.status_text == "在售"
    assert list(Package.objects.on_sale(NOW)) == [offer]
    offer.is_active = False
    offer.save()
    assert not offer.is_on_sale(NOW) and offer.status_text == "已下架"
    assert list(Package.objects.on_sale(NOW)) == []


def test_a_package_is_on_sale_from_its_start_and_no_longer_at_its_end():
    offer = package(active_from=NOW, active_until=NOW + DAY)
    before, last_moment, end = NOW - timedelta(seconds=1), NOW + DAY - timedelta(seconds=1), NOW + DAY
    assert offer.status(before) == Package.Status.NOT_STARTED and not offer.is_on_sale(before)
    assert offer.is_on_sale(NOW) and offer.is_on_sale(last_moment)
    assert offer.status(end) == Package.Status.ENDED and not offer.is_on_sale(end)
    assert [p.pk for p in Package.objects.on_sale(before)] == []
    assert [p.pk for p in Package.objects.on_sale(NOW)] == [offer.pk]
    assert [p.pk for p in Package.objects.on_sale(last_moment)] == [offer.pk]
    assert [p.pk for p in Package.objects.on_sale(end)] == []


def test_the_status_text_reads_the_clock_and_switched_off_wins():
    assert package(active_from=datetime.now(BEIJING) + DAY).status_text == "未开始"
    assert package(active_until=datetime.now(BEIJING) - DAY).status_text == "已结束"
    assert package(active_until=datetime.now(BEIJING) - DAY, is_active=False).status_text == "已下架"


def test_packages_on_sale_come_in_the_operators_order_then_by_price():
    cheap = package("充50", 5000, 0)
    dear = package("充500送100", 50000, 10000)
    first = package("首充礼", 10000, 3000, position=-1)
    same_price = package("充100送20", 10000, 2000)
    package("已下架", 100, 0, is_active=False, position=-5)
    assert list(Package.on_sale()) == [first, cheap, same_price, dear]


def test_an_end_before_the_start_is_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        package(active_from=NOW, active_until=NOW)


def test_a_package_must_cost_something():
    with pytest.raises(IntegrityError), transaction.atomic():
        package(price=0)


# -- what the user reads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "bonus", "label"),
    [
        (10000, 2000, "充 100 送 20"),
        (9990, 1000, "充 99.90 送 10"),
        (10000, 5, "充 100 送 0.05"),
        (10000, 0, "¥100"),
        (1990, 0, "¥19.90"),
    ],
)
def test_a_package_label_is_in_yuan_without_trailing_zero_fen(price, bonus, label):
    assert package(price=price, bonus=bonus).label == label


def test_the_mini_program_gets_a_package_in_fen_with_its_label():
    offer = package("首充礼", 10000, 3000, bonus_valid_days=30, per_user_limit=1)
    assert offer.to_dict() == {
        "id": offer.pk,
        "name": "首充礼",
        "price_fen": 10000,
        "bonus_fen": 3000,
        "bonus_valid_days": 30,
        "per_user_limit": 1,
        "label": "充 100 送 30",
    }
    assert package("充50", 5000, 0).to_dict()["bonus_valid_days"] is None


# -- bonus tiers -----------------------------------------------------------------------------------


def test_an_amount_earns_the_highest_tier_it_reaches():
    tier(10000, 1000)
    top = tier(100000, 20000)
    middle = tier(50000, 8000)
    assert BonusTier.best_for(100000, NOW) == top
    assert BonusTier.best_for(99999, NOW) == middle
    assert BonusTier.best_for(500000, NOW) == top
    assert BonusTier.best_for(9999, NOW) is None


def test_of_two_tiers_at_one_threshold_the_larger_bonus_wins():
    tier(50000, 5000)
    generous = tier(50000, 6000)
    assert BonusTier.best_for(60000, NOW) == generous


def test_a_tier_switched_off_or_out_of_its_window_gives_nothing():
    tier(50000, 5000, is_active=False)
    tier(40000, 4000, active_until=NOW)
    tier(30000, 3000, active_from=NOW + timedelta(seconds=1))
    lower = tier(10000, 500)
    assert BonusTier.best_for(60000, NOW) == lower
    assert list(BonusTier.on_sale(NOW)) == [lower]
    assert BonusTier.best_for(60000, NOW - timedelta(seconds=1)).threshold == 40000


def test_a_tier_reads_as_its_threshold_and_bonus():
    assert tier(100000, 20000).label == "满 1000 送 200"
    assert str(tier(9990, 1050)) == "满 99.90 送 10.50"


def test_a_tier_must_give_something():
    with pytest.raises(IntegrityError), transaction.atomic():
        tier(10000, 0)

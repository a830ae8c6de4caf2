"""/recharge/ with packages and tiers on sale (docs/packages.md): the grid offers the packages
in their order, else RECHARGE_PRESETS as before; the tiers are listed under the amount field
and handed to the page's script as JSON data; ?package= and ?amount= preselect."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from offers.models import BonusTier, Package
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def packages(db):
    """Four packages on sale, made out of page order, and two that are not."""
    return {
        "hundred": Package.objects.create(name="充100送20", price=10000, bonus=2000, bonus_valid_days=365, position=2),
        "first": Package.objects.create(name="首充礼", price=5000, bonus=5000, per_user_limit=1, position=1),
        "five_hundred": Package.objects.create(name="充 500 送 120", price=50000, bonus=12000, position=3),
        "plain": Package.objects.create(name="200元", price=20000, position=3),
        "off": Package.objects.create(name="已下架套餐", price=30000, bonus=3000, is_active=False),
        "ended": Package.objects.create(
            name="国庆特惠", price=80000, bonus=20000, active_until=timezone.now() - timedelta(minutes=1)
        ),
    }


@pytest.fixture
def tiers(db):
    return [
        BonusTier.objects.create(threshold=100000, bonus=20000, bonus_valid_days=180),
        BonusTier.objects.create(threshold=50000, bonus=5000),
        BonusTier.objects.create(threshold=30000, bonus=3000, is_active=False),
    ]


def page(client, query: str = "") -> str:
    response = client.get("/recharge/" + query)
    assert response.status_code == 200
    return response.content.decode()


def cells(html: str) -> list[str]:
    """The grid's cells, each as the text a person sees (tags stripped, spaces squeezed)."""
    found = re.findall(r'<label class="preset preset_package".*?</label>', html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in found]


def radio(html: str, package: Package) -> str:
    match = re.search(rf'<input type="radio" name="package" value="{package.pk}"[^>]*>', html)
    assert match, f"no radio for {package}"
    return match.group(0)


def test_the_grid_offers_the_packages_on_sale_in_page_order_with_their_bonus_and_tag(payer_client, packages):
    html = page(payer_client)
    assert cells(html) == [
        "¥50 送 ¥50 首充礼",  # a name of its own is its tag
        "¥100 送 ¥20",  # a name that only says 充100送20 again is not
        "¥200",  # no bonus, no line for it
        "¥500 送 ¥120",
    ]
    assert "已下架套餐" not in html and "国庆特惠" not in html
    assert 'name="preset"' not in html  # the plain amounts give way to the packages
    assert 'role="radiogroup"' in html and "或输入其他金额（元）" in html


def test_a_limited_package_without_a_name_of_its_own_is_tagged_with_its_limit(payer_client):
    Package.objects.create(name="充 30 送 5", price=3000, bonus=500, per_user_limit=2)
    assert cells(page(payer_client)) == ["¥30 送 ¥5 限购2次"]


def test_each_package_carries_the_hint_shown_when_it_is_chosen(payer_client, packages):
    html = page(payer_client)
    assert 'data-hint="支付 ¥100.00，到账 ¥120.00 · 赠送 365 天内有效"' in radio(html, packages["hundred"])
    assert 'data-hint="首充礼：支付 ¥50.00，到账 ¥100.00 · 每人限购 1 次"' in radio(html, packages["first"])
    assert 'data-hint="支付 ¥200.00"' in radio(html, packages["plain"])
    assert " checked" not in html  # nothing is chosen for the member


def test_with_no_package_on_sale_the_page_offers_the_presets_as_before(payer_client, settings):
    settings.RECHARGE_PRESETS = ["10", "30", "50"]
    Package.objects.create(name="充100送20", price=10000, bonus=2000, is_active=False)
    html = page(payer_client)
    assert re.findall(r'<input type="radio" name="preset" value="([^"]+)"', html) == ["10", "30", "50"]
    assert 'name="package"' not in html and "package-hint" not in html and "或输入金额（元）" in html


def test_tiers_on_sale_are_listed_under_the_amount_field_and_given_to_the_script(payer_client, tiers):
    html = page(payer_client)
    assert "满额赠送：满 500 送 50 · 满 1000 送 200" in html
    assert 'aria-describedby="tier-hint"' in html
    data = re.search(r'<script id="recharge-tiers" type="application/json">(.*?)</script>', html, re.S)
    assert data, "the tiers reach recharge.js as JSON data (no inline script: the CSP forbids one)"
    assert json.loads(data.group(1)) == [
        {"threshold_fen": 50000, "bonus_fen": 5000, "bonus_valid_days": None, "label": "满 500 送 50"},
        {"threshold_fen": 100000, "bonus_fen": 20000, "bonus_valid_days": 180, "label": "满 1000 送 200"},
    ]
    assert "满 300 送 30" not in html
    assert "<script>" not in html  # data, not a script: still no inline script (wxrecharge/csp.py)


def test_without_tiers_there_is_no_hint_and_no_data(payer_client, packages):
    html = page(payer_client)
    assert "tier-hint" not in html and "recharge-tiers" not in html


def test_package_in_the_link_is_chosen_with_its_hint_shown(payer_client, packages):
    html = page(payer_client, f"?package={packages['hundred'].pk}&amount=30")
    assert "checked" in radio(html, packages["hundred"]) and html.count(" checked") == 1
    assert 'data-testid="package-hint">支付 ¥100.00，到账 ¥120.00 · 赠送 365 天内有效</p>' in html
    assert re.search(r'id="amount"[^>]*value=""', html)  # the package wins over ?amount=


@pytest.mark.parametrize(
    "query",
    ["?package=abc", "?package=999999", "?package=-1", "?package=１", pytest.param("?package=" + "9" * 5000, id="5000-digits")],
)
def test_a_package_in_the_link_that_is_not_on_sale_chooses_nothing(payer_client, packages, query):
    html = page(payer_client, query)
    assert " checked" not in html


def test_a_package_switched_off_is_not_chosen_by_its_link(payer_client, packages):
    html = page(payer_client, f"?package={packages['off'].pk}")
    assert " checked" not in html and "已下架套餐" not in html


def test_an_amount_in_the_link_still_fills_the_field_when_packages_are_on_sale(payer_client, packages):
    html = page(payer_client, "?amount=100")
    assert re.search(r'id="amount"[^>]*value="100(\.00)?"', html)
    assert " checked" not in html  # an amount of one's own, not the package of that price


def test_an_amount_in_the_link_still_chooses_its_preset_without_packages(payer_client, settings):
    settings.RECHARGE_PRESETS = ["10", "30"]
    html = page(payer_client, "?amount=30")
    assert '<input type="radio" name="preset" value="30" class="preset__input" checked>' in html
    assert re.search(r'id="amount"[^>]*value="30"', html)


def test_binding_wechat_from_a_chosen_package_comes_back_to_it(client, packages):
    from tests.accounts.helpers import IN_WECHAT

    client.force_login(make_user("unbound"))
    session = client.session
    session["wechat_oauth_failed"] = True  # else WeChat's silent authorisation binds it at once
    session.save()
    html = client.get(f"/recharge/?package={packages['first'].pk}", **IN_WECHAT).content.decode()
    assert f"next=%2Frecharge%2F%3Fpackage%3D{packages['first'].pk}" in html

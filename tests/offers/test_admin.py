"""The operators' pages for offers: amounts typed in yuan and stored in fen, shown in yuan
again when edited, bad input refused in Chinese, and the lists."""

from __future__ import annotations

import re

import pytest

from offers.models import BonusTier, Package
from tests.admin import operator

pytestmark = pytest.mark.django_db

PACKAGES = "/admin/offers/package/"
TIERS = "/admin/offers/bonustier/"


def package_form(**values: str) -> dict[str, str]:
    """The add/change form as the page sends it (an empty window: always on sale)."""
    form = {
        "name": "充100送20",
        "price": "100",
        "bonus": "20",
        "bonus_valid_days": "",
        "per_user_limit": "",
        "active_from_0": "",
        "active_from_1": "",
        "active_until_0": "",
        "active_until_1": "",
        "position": "0",
        "is_active": "on",
    }
    return {**form, **values}


def tier_form(**values: str) -> dict[str, str]:
    form = {
        "threshold": "1000",
        "bonus": "200",
        "bonus_valid_days": "",
        "active_from_0": "",
        "active_from_1": "",
        "active_until_0": "",
        "active_until_1": "",
        "is_active": "on",
    }
    return {**form, **values}


def errors(response) -> str:
    """The page's error texts (field and form errors)."""
    assert response.status_code == 200, "the form was accepted"
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S))


def input_value(html: str, name: str) -> str:
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"', html)[1]


# -- packages --------------------------------------------------------------------------------------


def test_an_operator_adds_a_package_in_yuan_and_it_is_kept_in_fen(admin_client):
    form = package_form(name="首充礼", price="99.90", bonus="10", bonus_valid_days="30", per_user_limit="1", position="-1")
    response = admin_client.post(f"{PACKAGES}add/", form)
    assert response.status_code == 302, errors(response)
    offer = Package.objects.get()
    assert (offer.name, offer.price, offer.bonus, offer.bonus_valid_days, offer.per_user_limit, offer.position) == (
        "首充礼",
        9990,
        1000,
        30,
        1,
        -1,
    )
    assert offer.label == "充 99.90 送 10" and offer.is_on_sale()


def test_a_package_with_no_bonus_may_leave_it_empty(admin_client):
    response = admin_client.post(f"{PACKAGES}add/", package_form(name="充50", price="50", bonus=""))
    assert response.status_code == 302, errors(response)
    assert Package.objects.get().bonus == 0


def test_the_edit_page_shows_yuan_and_saves_what_changed(admin_client):
    offer = Package.objects.create(name="充100送20", price=10000, bonus=1990)
    url = f"{PACKAGES}{offer.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert input_value(html, "price") == "100" and input_value(html, "bonus") == "19.90"
    assert "充值金额（元）" in html and "赠送金额（元）" in html and "修改时间" in html
    response = admin_client.post(url, package_form(price="100", bonus="25.5"))
    assert response.status_code == 302, errors(response)
    offer.refresh_from_db()
    assert (offer.price, offer.bonus) == (10000, 2550)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"price": "一百"}, "请输入金额（元），如 100 或 99.90，最多两位小数"),
        ({"price": "10.001"}, "请输入金额（元），如 100 或 99.90，最多两位小数"),
        ({"price": "-5"}, "请输入金额（元），如 100 或 99.90，最多两位小数"),
        ({"price": ""}, "请填写金额"),
        ({"price": "0"}, "金额必须大于 0"),
        ({"price": "5000.01"}, "充值金额须在 ¥0.01 至 ¥5000.00 之间"),
        ({"bonus": "abc"}, "请输入金额（元），如 100 或 99.90，最多两位小数"),
        ({"bonus_valid_days": "0"}, "有效期至少 1 天"),
        ({"per_user_limit": "0"}, "限购次数至少为 1"),
        (
            {
                "active_from_0": "2026-12-02",
                "active_from_1": "00:00:00",
                "active_until_0": "2026-12-01",
                "active_until_1": "00:00:00",
            },
            "结束时间必须晚于开始时间",
        ),
    ],
)
def test_bad_input_is_refused_in_chinese_and_nothing_is_saved(admin_client, values, message):
    response = admin_client.post(f"{PACKAGES}add/", package_form(**values))
    assert message in errors(response)
    assert not Package.objects.exists()


def test_the_price_follows_the_recharge_limits(admin_client, settings):
    settings.RECHARGE_MIN_FEN, settings.RECHARGE_MAX_FEN = 1000, 100000
    assert "充值金额须在 ¥10.00 至 ¥1000.00 之间" in errors(admin_client.post(f"{PACKAGES}add/", package_form(price="9.99")))
    assert admin_client.post(f"{PACKAGES}add/", package_form(price="1000")).status_code == 302


def test_the_package_list_shows_yuan_labels_and_status(admin_client):
    Package.objects.create(name="首充礼", price=9990, bonus=1000, bonus_valid_days=30, per_user_limit=1, position=-1)
    Package.objects.create(name="充50", price=5000, is_active=False)
    html = admin_client.get(PACKAGES).content.decode()
    for text in ("首充礼", "充 99.90 送 10", "¥99.90", "¥10.00", "30 天", "1 次", "长期", "在售"):
        assert text in html, text
    for text in ("充50", "¥50", "不限", "已下架"):
        assert text in html, text
    assert admin_client.get(PACKAGES, {"is_active__exact": "0"}).status_code == 200


def test_packages_are_switched_off_and_reordered_in_the_list(admin_client):
    offer = Package.objects.create(name="充100送20", price=10000, bonus=2000)
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(offer.pk),
        "form-0-position": "3",
        "_save": "保存",
    }
    assert admin_client.post(PACKAGES, data).status_code == 302
    offer.refresh_from_db()
    assert offer.position == 3 and not offer.is_active and not Package.objects.on_sale().exists()


def test_an_operator_needs_the_offers_permissions():
    _, viewer = operator("viewer", "offers.view_package")
    assert viewer.get(PACKAGES).status_code == 200
    assert viewer.get(f"{PACKAGES}add/").status_code == 403
    assert viewer.get(TIERS).status_code == 403


# -- bonus tiers -----------------------------------------------------------------------------------


def test_an_operator_adds_a_tier_in_yuan(admin_client):
    response = admin_client.post(f"{TIERS}add/", tier_form(threshold="1000", bonus="200", bonus_valid_days="90"))
    assert response.status_code == 302, errors(response)
    tier = BonusTier.objects.get()
    assert (tier.threshold, tier.bonus, tier.bonus_valid_days) == (100000, 20000, 90)
    html = admin_client.get(f"{TIERS}{tier.pk}/change/").content.decode()
    assert input_value(html, "threshold") == "1000" and input_value(html, "bonus") == "200"
    assert "修改时间" not in admin_client.get(f"{TIERS}add/").content.decode()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"threshold": "0"}, "金额必须大于 0"),
        ({"bonus": "0"}, "金额必须大于 0"),
        ({"bonus": ""}, "请填写金额"),
        ({"threshold": "1,000"}, "请输入金额（元），如 100 或 99.90，最多两位小数"),
        ({"threshold": "5000.01"}, "满额不能超过单笔充值上限 ¥5000.00"),
    ],
)
def test_a_bad_tier_is_refused_in_chinese(admin_client, values, message):
    assert message in errors(admin_client.post(f"{TIERS}add/", tier_form(**values)))
    assert not BonusTier.objects.exists()


def test_the_tier_list_shows_labels_and_status(admin_client):
    BonusTier.objects.create(threshold=100000, bonus=20000, bonus_valid_days=90)
    BonusTier.objects.create(threshold=50000, bonus=5000)
    html = admin_client.get(TIERS).content.decode()
    for text in ("满 1000 送 200", "¥1000.00", "¥200.00", "90 天", "满 500 送 50", "永久", "在售"):
        assert text in html, text

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from tests.factories import make_user

pytestmark = pytest.mark.django_db
URL = reverse("accounts:register")
GOOD = "correct-horse-battery-9"


def register(client, username="bob", password1=GOOD, password2=None, **extra):
    data = {"username": username, "password1": password1, "password2": password2 or password1, **extra}
    return client.post(URL, data)


def test_it_shows_a_chinese_weui_form(client):
    response = client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "注册账户" in html and "weui-form" in html and "weui/weui.min.css" in html


def test_it_creates_the_user_signs_in_and_lands_on_recharge(client):
    response = register(client)
    assert response.status_code == 302 and response["Location"] == "/recharge/"
    user = User.objects.get(username="bob")
    assert user.balance == 0 and user.check_password(GOOD)
    page = client.get("/recharge/")
    assert page.status_code == 200 and "¥0.00" in page.content.decode()


def test_it_follows_a_same_site_next(client):
    response = register(client, next="/orders/?page=2")
    assert response["Location"] == "/orders/?page=2"


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example", "javascript:alert(1)", "http:/\\evil.example"])
def test_it_ignores_an_off_site_next(client, evil):
    response = register(client, next=evil)
    assert response["Location"] == "/recharge/"


def field_errors(response, field):
    return " ".join(str(e) for e in response.context["form"].errors.get(field, []))


def test_a_taken_name_is_refused_in_chinese(client):
    make_user("bob")
    response = register(client, username="bob")
    assert response.status_code == 200
    assert "已存在" in field_errors(response, "username")
    assert "已存在" in response.content.decode()
    assert User.objects.filter(username="bob").count() == 1


@pytest.mark.parametrize(
    ("password", "expected"),
    [("12345678", "只包含数字"), ("abc", "太短"), ("password", "太常见"), ("bobbob123", "相似")],
)
def test_weak_passwords_are_refused_with_the_reason(client, password, expected):
    response = register(client, username="bobbob", password1=password)
    assert response.status_code == 200
    assert expected in field_errors(response, "password2")
    assert not User.objects.filter(username="bobbob").exists()


def test_mismatched_passwords_are_refused(client):
    response = register(client, password1=GOOD, password2=GOOD + "x")
    assert "不一致" in field_errors(response, "password2") or "不匹配" in field_errors(response, "password2")
    assert not User.objects.exists()


def test_over_long_input_is_refused(client):
    response = register(client, username="b" * 151)
    assert "150" in field_errors(response, "username")
    response = register(client, username="bob", password1="Aa1-" * 40)
    assert "128" in field_errors(response, "password1")
    assert not User.objects.exists()


def test_a_name_with_odd_characters_is_refused(client):
    response = register(client, username="bob<script>")
    assert field_errors(response, "username")
    assert not User.objects.exists()

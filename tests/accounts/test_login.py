from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db
URL = reverse("accounts:login")


def test_the_site_root_sends_visitors_to_login_through_recharge(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith(URL + "?next=/recharge/")
    assert "登录账户" in response.content.decode()


def test_it_signs_in_and_follows_next(client, user):
    response = client.post(URL, {"username": "alice", "password": PASSWORD, "next": "/recharge/?a=1"})
    assert response.status_code == 302 and response["Location"] == "/recharge/?a=1"


def test_without_next_it_lands_on_recharge(client, user):
    response = client.post(URL, {"username": "alice", "password": PASSWORD})
    assert response["Location"] == "/recharge/"


@pytest.mark.parametrize("evil", ["https://evil.example", "//evil.example", "javascript:alert(1)"])
def test_an_off_site_next_lands_on_recharge(client, user, evil):
    response = client.post(URL + f"?next={evil}", {"username": "alice", "password": PASSWORD})
    assert response["Location"] == "/recharge/"
    assert "evil" not in client.get(URL + f"?next={evil}").content.decode()


def test_a_wrong_password_and_an_unknown_name_say_the_same(client, user):
    wrong_password = client.post(URL, {"username": "alice", "password": "nope-nope-nope"})
    unknown_name = client.post(URL, {"username": "nobody", "password": PASSWORD})
    for response in (wrong_password, unknown_name):
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
    errors = [r.context["form"].non_field_errors() for r in (wrong_password, unknown_name)]
    assert errors[0] == errors[1]
    assert "正确的" in str(errors[0])


def test_logout_needs_post(logged_in_client):
    response = logged_in_client.get(reverse("accounts:logout"))
    assert response.status_code == 405
    assert "_auth_user_id" in logged_in_client.session
    response = logged_in_client.post(reverse("accounts:logout"))
    assert response.status_code == 302 and response["Location"] == URL
    assert "_auth_user_id" not in logged_in_client.session


def test_recharge_needs_login(client):
    response = client.get("/recharge/")
    assert response.status_code == 302 and response["Location"] == URL + "?next=/recharge/"


def test_the_forms_are_plain_posts_that_a_script_only_marks_busy(client):
    for url in (URL, reverse("accounts:register")):
        html = client.get(url).content.decode()
        assert '<form method="post"' in html and "data-busy-form" in html  # posts without JavaScript
        assert "/static/accounts/signin.js" in html and "<script>" not in html  # no inline script (CSP)
    assert 'data-busy-text="登录中…"' in client.get(URL).content.decode()
    assert 'data-busy-text="注册中…"' in client.get(reverse("accounts:register")).content.decode()

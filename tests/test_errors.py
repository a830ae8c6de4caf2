"""Errors people and pages see: WeUI pages in Chinese with a way back to 充值 when debug is
off; JSON for every error of a JSON endpoint; the Content-Security-Policy on every answer."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.template.loader import render_to_string
from django.test import Client

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def no_debug(settings):
    settings.DEBUG = False
    return settings


def assert_weui_page(response, status: int, *words: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'lang="zh-CN"' in html and "weui.min.css" in html and 'href="/recharge/"' in html and "返回充值" in html
    for word in words:
        assert word in html
    return html


# -- pages ------------------------------------------------------------------------------------------------------------


def test_an_unknown_page_is_a_chinese_404(client, no_debug):
    assert_weui_page(client.get("/no-such-page/"), 404, "页面不存在")


def test_a_signed_in_404_keeps_the_header_and_footer(logged_in_client, no_debug):
    html = assert_weui_page(logged_in_client.get("/orders/NOSUCH/"), 404, "页面不存在")
    assert "充值记录" in html and "退出登录" in html


def test_a_forbidden_page_is_a_chinese_403(admin_client, no_debug, rf):
    """Outside the admin a refusal is the member site's page (an admin page refused to an
    operator stays in the admin: tests/admin/test_admin_polish.py)."""
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied

    from wxrecharge.views import permission_denied

    request = rf.get("/recharge/")
    request.user = AnonymousUser()
    assert_weui_page(permission_denied(request, PermissionDenied()), 403, "没有权限")
    admin_page = admin_client.get("/admin/orders/rechargeorder/add/")
    assert admin_page.status_code == 403 and "运营后台" in admin_page.content.decode()


def test_a_bad_request_is_a_chinese_400(client, no_debug):
    assert_weui_page(client.get("/recharge/", HTTP_HOST="evil.example"), 400, "请求有误")
    assert_weui_page(client.get("/accounts/login/?next=%00"), 400, "请求包含无效字符")


def test_a_crash_is_a_chinese_500(logged_in_client, no_debug):
    logged_in_client.raise_request_exception = False
    with mock.patch("payments.views._presets", side_effect=RuntimeError("a bug")):
        response = logged_in_client.get("/recharge/")
    html = assert_weui_page(response, 500, "系统繁忙")
    assert "a bug" not in html and "Traceback" not in html


def test_the_500_page_renders_without_a_request():
    # Django renders 500.html with an empty context: no request, no user, no database.
    html = render_to_string("500.html", {})
    assert "系统繁忙" in html and 'href="/recharge/"' in html and "退出登录" not in html


def test_a_form_with_a_stale_csrf_token_gets_a_page_with_a_way_on(db, no_debug):
    make_user("demo")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/accounts/login/",
        {"username": "demo", "password": PASSWORD},
        HTTP_REFERER="http://testserver/accounts/login/?next=/orders/",
    )
    html = assert_weui_page(response, 403, "页面已过期", "刷新页面")
    assert 'href="http://testserver/accounts/login/?next=/orders/"' in html
    off_site = strict.post("/accounts/login/", {"username": "demo"}, HTTP_REFERER="https://evil.example/")
    assert "evil.example" not in assert_weui_page(off_site, 403, "页面已过期")


# -- JSON endpoints answer JSON -----------------------------------------------------------------------------------------


def assert_json_error(response, status: int, error: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and CHINESE.search(body["message"])
    return body


def test_a_missing_csrf_token_on_a_json_endpoint_is_json(user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    response = strict.post("/payments/jsapi/prepay/", {"amount": "10.00"}, content_type="application/json")
    body = assert_json_error(response, 403, "csrf_failed")
    assert body == {"error": "csrf_failed", "message": "页面已过期，请刷新后重试"}


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "url", ["/payments/orders/ab%20cd/status/", "/payments/jsapi/nothing/", "/api/mp/nothing", "/payments/orders/X1/"]
)
def test_an_unknown_json_url_is_a_json_404_with_or_without_debug(logged_in_client, settings, url, debug):
    settings.DEBUG = debug
    assert_json_error(logged_in_client.get(url), 404, "not_found")


def test_a_wrong_method_on_a_json_endpoint_is_a_json_405(logged_in_client):
    response = logged_in_client.get("/payments/jsapi/prepay/")
    assert_json_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


def test_a_404_raised_inside_a_json_view_is_json_not_a_logged_500(logged_in_client, caplog):
    from django.http import Http404

    with mock.patch("payments.api.order_status_answer", side_effect=Http404):
        response = logged_in_client.get("/payments/orders/X1/status/")
    assert_json_error(response, 404, "not_found")
    assert "failed" not in caplog.text


# -- hardening ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/recharge/", "/orders/", "/accounts/login/", "/healthz", "/admin/login/", "/payments/jsapi/prepay/"]
)
def test_every_answer_carries_the_content_security_policy(logged_in_client, url):
    policy = logged_in_client.get(url)["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_policy_lets_weui_icons_and_same_origin_fetches_through(client):
    policy = dict(part.strip().split(" ", 1) for part in client.get("/accounts/login/")["Content-Security-Policy"].split(";"))
    assert policy["img-src"] == "'self' data:" and policy["connect-src"] == "'self'" and policy["style-src"] == "'self'"


def test_the_pages_have_no_inline_script_style_or_handler(logged_in_client, user):
    from tests.factories import make_order

    order = make_order(user)
    for url in ("/recharge/", "/orders/", f"/orders/{order.out_trade_no}/", "/accounts/login/"):
        html = logged_in_client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), url
        assert "<style" not in html and " style=" not in html, url
        assert not re.search(r"\son[a-z]+=", html), url


def test_the_viewport_lets_people_zoom(client):
    html = client.get("/accounts/login/").content.decode()
    assert 'name="viewport"' in html and "user-scalable=no" not in html and "maximum-scale" not in html

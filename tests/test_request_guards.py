"""Guards every request passes: NUL characters stop at the door, JSON endpoints answer JSON
when the database fails, and logins and orders are throttled per address and per user."""

from __future__ import annotations

import re
from unittest import mock

import pytest
import time_machine
from django.db import OperationalError
from django.utils import timezone

from accounts import tokens
from accounts.models import User
from devtools.wechat_sandbox.models import Trade
from orders.models import RechargeOrder
from payments import wechat
from tests.factories import PASSWORD, make_order, make_user

CHINESE = re.compile(r"[\u4e00-\u9fff]")


def bearer(user: User) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(user)}"}


def assert_json_error(response, status: int, error: str):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and CHINESE.search(body["message"])
    return body


@pytest.fixture
def miniprogram_user(db):
    return make_user("mini", miniprogram_openid="oMini000000000000000000000001")


# -- 6. a NUL in a URL or form field never reaches the database ----------------------------------------------


def test_a_nul_in_a_status_url_is_a_400_json_error(logged_in_client):
    assert_json_error(logged_in_client.get("/payments/orders/ab%00cd/status/"), 400, "invalid_request")
    assert_json_error(logged_in_client.get("/payments/orders/abcd/status/?t=%00"), 400, "invalid_request")


def test_a_nul_in_a_mini_program_order_url_is_a_4xx_json_error(client, miniprogram_user):
    response = client.get("/api/mp/orders/ab%00cd", **bearer(miniprogram_user))
    assert 400 <= response.status_code < 500 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]
    response = client.get("/api/mp/orders?page=%00", **bearer(miniprogram_user))
    assert 400 <= response.status_code < 500 and response.json()["error"]


@pytest.mark.parametrize("url", ["/accounts/login/", "/accounts/register/"])
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_nul_in_a_sign_in_or_sign_up_form_is_a_400(client, db, url, encoding):
    make_user("demo")
    data = {"username": "de\x00mo", "password": PASSWORD, "password1": PASSWORD, "password2": PASSWORD}
    if encoding == "urlencoded":
        response = client.post(
            url, "username=de%00mo&password=x&password1=x&password2=x", content_type="application/x-www-form-urlencoded"
        )
    else:
        response = client.post(url, data)
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session
    assert User.objects.count() == 1


def test_a_nul_in_a_query_string_of_a_page_is_a_400(client, db):
    assert client.get("/accounts/login/?next=%00").status_code == 400


def test_the_same_forms_without_a_nul_still_work(client, db):
    make_user("demo")
    assert client.post("/accounts/login/", {"username": "demo", "password": PASSWORD}).status_code == 302
    assert "_auth_user_id" in client.session


@pytest.mark.parametrize("bad", ["..%2Fx", "../x", "A" * 33, "ab%20cd", "%E8%AE%A2%E5%8D%95"])
def test_a_malformed_order_number_is_not_found(logged_in_client, miniprogram_user, bad):
    assert logged_in_client.get(f"/payments/orders/{bad}/status/").status_code == 404
    assert logged_in_client.get(f"/api/mp/orders/{bad}", **bearer(miniprogram_user)).status_code == 404


def test_a_well_formed_order_number_of_32_characters_that_is_not_ours_is_a_json_404(logged_in_client):
    response = logged_in_client.get(f"/payments/orders/{'A' * 32}/status/")
    assert_json_error(response, 404, "order_not_found")


# -- 7. JSON endpoints answer JSON when the database fails ------------------------------------------------------


def test_a_database_error_during_prepay_is_a_503_json_answer(logged_in_client):
    with mock.patch("payments.services.prepay", side_effect=OperationalError("the database is down")):
        response = logged_in_client.post("/payments/jsapi/prepay/", {"amount": "10.00"}, content_type="application/json")
    assert response["Content-Type"] == "application/json"
    body = assert_json_error(response, 503, "server_busy")
    assert set(body) == {"error", "message"}
    assert "database" not in body["message"]


def test_a_database_error_during_a_mini_program_prepay_is_a_503_json_answer(client, miniprogram_user):
    with mock.patch("payments.services.prepay", side_effect=OperationalError("the database is down")):
        response = client.post("/api/mp/prepay", {"amount": "10.00"}, content_type="application/json", **bearer(miniprogram_user))
    assert_json_error(response, 503, "server_busy")


def test_a_database_error_during_a_status_poll_is_a_503_json_answer(logged_in_client, user):
    order = make_order(user, amount=1000)
    with mock.patch("payments.services.poll_order", side_effect=OperationalError("the database is down")):
        response = logged_in_client.get(f"/payments/orders/{order.out_trade_no}/status/")
    assert_json_error(response, 503, "server_busy")


def test_any_other_failure_of_a_json_endpoint_is_a_500_json_answer(logged_in_client):
    with mock.patch("payments.services.prepay", side_effect=RuntimeError("a bug")):
        response = logged_in_client.post("/payments/jsapi/prepay/", {"amount": "10.00"}, content_type="application/json")
    body = assert_json_error(response, 500, "server_error")
    assert "a bug" not in body["message"]


# -- 9. mini-program logins are throttled per address -------------------------------------------------------------


@pytest.fixture
def clock():
    # Mid-window: the per-minute counters must not roll over during the test.
    now = timezone.now().replace(second=20, microsecond=0)
    with time_machine.travel(now, tick=False) as traveller:
        yield traveller


def miniprogram_login(client, code: str, ip: str = "10.1.2.3"):
    return client.post("/api/mp/login", {"code": code}, content_type="application/json", REMOTE_ADDR=ip)


def test_a_flood_of_junk_login_codes_is_refused_before_it_reaches_wechat(client, db, clock, settings):
    limit = settings.MP_LOGINS_PER_MINUTE_PER_ADDRESS
    assert limit == 60
    refused = wechat.WeChatError("jscode2session: 40029", "40029")
    with mock.patch("accounts.wechat_login.mini_program_session", side_effect=refused) as jscode2session:
        for n in range(limit):
            assert miniprogram_login(client, f"junk-{n}").json()["error"] == "invalid_code"
        assert jscode2session.call_count == limit

        response = miniprogram_login(client, "junk-more")
        assert response.status_code == 429 and response.json()["error"] == "too_many_requests"
        assert jscode2session.call_count == limit

        assert miniprogram_login(client, "junk-elsewhere", ip="10.9.9.9").json()["error"] == "invalid_code"
        assert jscode2session.call_count == limit + 1

        clock.shift(60)
        assert miniprogram_login(client, "junk-next-minute").json()["error"] == "invalid_code"
        assert jscode2session.call_count == limit + 2
    assert not User.objects.exists()


def test_the_mini_program_login_limit_per_address_is_a_setting(client, db, clock, settings):
    settings.MP_LOGINS_PER_MINUTE_PER_ADDRESS = 2
    refused = wechat.WeChatError("jscode2session: 40029", "40029")
    with mock.patch("accounts.wechat_login.mini_program_session", side_effect=refused) as jscode2session:
        assert [miniprogram_login(client, f"junk-{n}").status_code for n in range(3)] == [400, 400, 429]
        assert jscode2session.call_count == 2
        settings.MP_LOGINS_PER_MINUTE_PER_ADDRESS = 100  # a campus behind one address
        assert miniprogram_login(client, "junk-after-raise").status_code == 400
        assert jscode2session.call_count == 3


# -- 10. one user cannot pile up pending orders (sandbox over HTTP) ---------------------------------------------


@pytest.fixture
def payer_client(client, sandbox_url):
    client.force_login(make_user("payer", openid="oPayer0000000000000000000001"))
    return client


def prepay(client, amount: str):
    return client.post("/payments/jsapi/prepay/", {"amount": amount}, content_type="application/json")


@pytest.mark.django_db(transaction=True)
def test_a_user_with_the_most_open_orders_cannot_open_another(payer_client, settings, clock):
    limit = settings.RECHARGE_MAX_OPEN_ORDERS
    assert limit == 5
    placed = [prepay(payer_client, f"{n + 1}.00") for n in range(limit)]
    assert [r.status_code for r in placed] == [200] * limit

    response = prepay(payer_client, "99.00")
    assert_json_error(response, 429, "too_many_orders")
    assert RechargeOrder.objects.count() == limit and Trade.objects.count() == limit

    # The same amount as an open order is that order again, not a new one.
    again = prepay(payer_client, "1.00")
    assert again.status_code == 200 and again.json()["out_trade_no"] == placed[0].json()["out_trade_no"]

    # An order that can no longer be paid no longer counts.
    RechargeOrder.objects.get(out_trade_no=placed[0].json()["out_trade_no"]).close()
    assert prepay(payer_client, "99.00").status_code == 200
    assert RechargeOrder.objects.filter(status=RechargeOrder.Status.PENDING).count() == limit


@pytest.mark.django_db(transaction=True)
def test_a_lower_open_order_limit_is_honoured(payer_client, settings, clock):
    settings.RECHARGE_MAX_OPEN_ORDERS = 2
    assert prepay(payer_client, "1.00").status_code == 200
    assert prepay(payer_client, "2.00").status_code == 200
    assert_json_error(prepay(payer_client, "3.00"), 429, "too_many_orders")
    assert RechargeOrder.objects.count() == 2


def test_the_order_limits_per_minute_default_to_10_per_user_and_60_per_address(settings):
    assert settings.RECHARGE_ORDERS_PER_MINUTE_PER_USER == 10
    assert settings.RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS == 60


@pytest.mark.django_db(transaction=True)
def test_prepays_per_minute_are_limited_per_user(payer_client, clock, settings):
    settings.RECHARGE_ORDERS_PER_MINUTE_PER_USER = 3
    answers = [prepay(payer_client, "10.00") for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert_json_error(prepay(payer_client, "10.00"), 429, "too_many_requests")
    assert RechargeOrder.objects.count() == 1

    other = make_user("other", openid="oOther00000000000000000000001")
    payer_client.force_login(other)
    assert prepay(payer_client, "10.00").status_code == 200

    clock.shift(60)
    payer_client.force_login(User.objects.get(username="payer"))
    assert prepay(payer_client, "10.00").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_prepays_per_minute_from_one_address_follow_their_setting(client, sandbox_url, clock, settings):
    settings.RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS = 2
    users = [make_user(f"campus{n}", openid=f"oCampus{n:0>21}") for n in range(3)]
    answers = []
    for user in users:  # three people behind one address, one order each
        client.force_login(user)
        answers.append(prepay(client, "10.00").status_code)
    assert answers == [200, 200, 429]
    settings.RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS = 200
    assert prepay(client, "10.00").status_code == 200

"""The mini-program JSON API, played as a mini program would: wx.login, prepay, pay, query."""

from __future__ import annotations

import logging

import pytest
import requests
from django.conf import settings
from django.core import signing
from django.test import override_settings

from accounts import tokens
from accounts.models import User
from orders.models import RechargeOrder
from tests.factories import make_order
from tests.helpers import pay_sign_verifies

pytestmark = pytest.mark.django_db(transaction=True)


def wx_login(sandbox_url, openid="oMini000000000000000000000001") -> str:
    """wx.login() in the sandbox: a one-time code for this openid."""
    return requests.post(sandbox_url + "mp/login-code", json={"openid": openid}, timeout=10).json()["code"]


def login(client, code):
    return client.post("/api/mp/login", {"code": code}, content_type="application/json")


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def token(client, sandbox_url):
    return login(client, wx_login(sandbox_url)).json()["token"]


def test_a_mini_program_logs_in_prepays_pays_and_sees_its_history(client, sandbox_url, caplog):
    caplog.set_level(logging.DEBUG)
    answer = login(client, wx_login(sandbox_url))
    assert answer.status_code == 200 and set(answer.json()) == {"token", "expires_in"}
    user = User.objects.get(miniprogram_openid="oMini000000000000000000000001")
    assert user.miniprogram_session_key and user.miniprogram_session_key not in answer.content.decode()
    auth = bearer(answer.json()["token"])

    prepaid = client.post("/api/mp/prepay", {"amount": "6.66"}, content_type="application/json", **auth).json()
    params = prepaid["pay_params"]
    assert prepaid["amount_fen"] == 666 and set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    # wx.requestPayment signs the mini program's appid in, without sending it.
    assert pay_sign_verifies(params, settings.WECHAT_MINIPROGRAM_APPID)
    order = RechargeOrder.objects.get(out_trade_no=prepaid["out_trade_no"])
    assert order.channel == "miniprogram" and order.openid == user.miniprogram_openid

    paid = requests.post(
        sandbox_url + "cashier/pay", json={**params, "appId": settings.WECHAT_MINIPROGRAM_APPID}, timeout=10
    ).json()
    assert paid == {"err_msg": "get_brand_wcpay_request:ok"}

    status = client.get(f"/api/mp/orders/{prepaid['out_trade_no']}", **auth).json()
    order = RechargeOrder.objects.get(out_trade_no=prepaid["out_trade_no"])
    assert status == {
        "out_trade_no": prepaid["out_trade_no"],
        "status": "paid",
        "confirming": False,
        "amount_fen": 666,
        "balance_fen": 666,
        "channel": "miniprogram",
        "refunded_fen": 0,
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat(),
    }
    history = client.get("/api/mp/orders?page=1", **auth).json()
    assert history["balance_fen"] == 666 and history["next_page"] is None
    assert [(r["out_trade_no"], r["status"], r["amount_fen"]) for r in history["results"]] == [
        (prepaid["out_trade_no"], "paid", 666)
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert user.miniprogram_session_key not in logged


def test_the_same_openid_logs_in_as_the_same_user(client, sandbox_url):
    login(client, wx_login(sandbox_url))
    login(client, wx_login(sandbox_url))
    assert User.objects.filter(miniprogram_openid="oMini000000000000000000000001").count() == 1


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": 5}, {"code": "x" * 500}, []])
def test_login_refuses_a_missing_or_odd_code(client, sandbox_url, body):
    response = client.post("/api/mp/login", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert not User.objects.exists()


def test_login_refuses_a_reused_or_unknown_code(client, sandbox_url):
    code = wx_login(sandbox_url)
    assert login(client, code).status_code == 200
    again = login(client, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_code"
    assert login(client, "never-minted").json()["error"] == "invalid_code"


def test_login_with_wechat_unreachable_is_502(client, sandbox_url, settings):
    code = wx_login(sandbox_url)
    settings.WECHAT_API_BASE_URL = "http://127.0.0.1:9/"
    response = login(client, code)
    assert response.status_code == 502 and response.json()["error"] == "wechat_unavailable"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic abc", "Token x"])
def test_missing_or_garbage_tokens_are_401(client, sandbox_url, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for response in (
        client.get("/api/mp/orders", **extra),
        client.post("/api/mp/prepay", {"amount": "1"}, content_type="application/json", **extra),
        client.get("/api/mp/orders/X", **extra),
    ):
        assert response.status_code == 401 and response.json()["error"] == "login_required"
    assert not RechargeOrder.objects.exists()


def test_a_tampered_token_is_401(client, token):
    head, _, tail = token.rpartition(":")
    tampered = head + ":" + ("A" if tail[0] != "A" else "B") + tail[1:]
    assert client.get("/api/mp/orders", **bearer(tampered)).status_code == 401
    forged = signing.dumps({"u": User.objects.get().pk, "o": "oMini000000000000000000000001"}, salt="another-salt")
    assert client.get("/api/mp/orders", **bearer(forged)).status_code == 401


def test_an_expired_token_is_401(client, token):
    with override_settings(MP_TOKEN_TTL_SECONDS=-1):
        assert client.get("/api/mp/orders", **bearer(token)).status_code == 401
    assert client.get("/api/mp/orders", **bearer(token)).status_code == 200


def test_a_token_of_a_deleted_or_disabled_user_is_401(client, token):
    User.objects.update(is_active=False)
    assert client.get("/api/mp/orders", **bearer(token)).status_code == 401
    User.objects.all().delete()
    assert client.get("/api/mp/orders", **bearer(token)).status_code == 401


def test_an_h5_session_is_not_a_token(client, sandbox_url):
    client.force_login(User.objects.create(username="web", openid="oWeb"))
    assert client.get("/api/mp/orders").status_code == 401
    assert tokens.user_for("") is None


def test_orders_are_paged_by_twenty_and_only_ones_own(client, token):
    user = User.objects.get()
    for n in range(23):
        make_order(user, amount=100 + n, channel="miniprogram")
    make_order(User.objects.create(username="other", miniprogram_openid="oOther"), amount=999)
    first = client.get("/api/mp/orders", **bearer(token)).json()
    assert len(first["results"]) == 20 and first["next_page"] == 2
    second = client.get("/api/mp/orders?page=2", **bearer(token)).json()
    assert len(second["results"]) == 3 and second["next_page"] is None
    assert client.get("/api/mp/orders?page=9", **bearer(token)).json()["results"] == []
    for bad in ("0", "-1", "abc", "１"):
        assert client.get(f"/api/mp/orders?page={bad}", **bearer(token)).status_code == 400
    other = RechargeOrder.objects.get(amount=999)
    assert client.get(f"/api/mp/orders/{other.out_trade_no}", **bearer(token)).status_code == 404


def test_mp_prepay_refuses_bad_amounts(client, token):
    response = client.post("/api/mp/prepay", {"amount": "0.001"}, content_type="application/json", **bearer(token))
    assert response.status_code == 400 and response.json()["error"] == "invalid_amount"
    assert not RechargeOrder.objects.exists()

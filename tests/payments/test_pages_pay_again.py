"""The pages' JSON side: 继续支付 (POST /payments/orders/<no>/pay/) pays the same order again;
binding WeChat in the middle of a payment keeps the amount; a lapsed session says where to sign in."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from django.conf import settings
from django.test import Client
from django.utils import timezone

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Trade
from orders.models import RechargeOrder
from tests.factories import make_order, make_user
from tests.helpers import pay_sign_verifies

pytestmark = pytest.mark.django_db(transaction=True)
PREPAY = "/payments/jsapi/prepay/"


def prepay(client, amount="10.00"):
    response = client.post(PREPAY, {"amount": amount}, content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def pay_again(client, out_trade_no):
    return client.post(f"/payments/orders/{out_trade_no}/pay/", content_type="application/json")


def test_pay_again_answers_fresh_params_for_the_same_order_and_prepay_id(payer_client):
    first = prepay(payer_client)
    response = pay_again(payer_client, first["out_trade_no"])
    assert response.status_code == 200
    body = response.json()
    assert body["out_trade_no"] == first["out_trade_no"] and body["amount_fen"] == 1000
    params = body["pay_params"]
    assert params["package"] == first["pay_params"]["package"] and params["appId"] == settings.WECHAT_APPID
    assert pay_sign_verifies(params, settings.WECHAT_APPID)
    assert RechargeOrder.objects.count() == 1 and Trade.objects.count() == 1  # never a second order


def test_pay_again_then_paying_settles_that_one_order(payer_client, payer):
    first = prepay(payer_client)
    params = pay_again(payer_client, first["out_trade_no"]).json()["pay_params"]
    trade = Trade.objects.get(prepay_id=params["package"].removeprefix("prepay_id="))
    sandbox_services.pay(trade.prepay_id, trade.appid)
    # The status check right after paying asks WeChat (pay_again's query did not use up the poll's turn).
    status = payer_client.get(f"/payments/orders/{first['out_trade_no']}/status/").json()
    assert status["status"] == "paid" and status["balance_fen"] == 1000
    assert RechargeOrder.objects.get().status == RechargeOrder.Status.PAID


def test_an_order_paid_meanwhile_is_refused_with_409(payer_client):
    first = prepay(payer_client)
    trade = Trade.objects.get(out_trade_no=first["out_trade_no"])
    sandbox_services.pay(trade.prepay_id, trade.appid)  # paid at WeChat; the notify has not come
    response = pay_again(payer_client, first["out_trade_no"])
    assert response.status_code == 409
    assert response.json() == {"error": "order_paid", "message": "这笔订单已支付，无需再付"}
    assert RechargeOrder.objects.get().status == RechargeOrder.Status.PAID  # learnt from orderquery


def test_a_closed_order_is_refused_with_410(payer_client):
    first = prepay(payer_client)
    RechargeOrder.objects.get().close()
    response = pay_again(payer_client, first["out_trade_no"])
    assert response.status_code == 410 and response.json()["error"] == "order_closed"
    assert "重新充值" in response.json()["message"]


def test_an_order_whose_prepay_expired_is_refused_with_410(payer_client):
    first = prepay(payer_client)
    RechargeOrder.objects.update(prepay_expires_at=timezone.now() + timedelta(seconds=30))
    response = pay_again(payer_client, first["out_trade_no"])
    assert response.status_code == 410 and response.json()["error"] == "order_expired"
    assert RechargeOrder.objects.count() == 1


def test_an_order_with_no_prepay_id_is_refused_with_410(payer_client, payer):
    order = make_order(payer)
    response = pay_again(payer_client, order.out_trade_no)
    assert response.status_code == 410 and response.json()["error"] == "order_expired"


def test_a_mini_program_order_is_refused_with_409(payer_client, payer):
    order = make_order(payer, channel="miniprogram", prepay_id="wx-mp", prepay_expires_at=timezone.now() + timedelta(hours=1))
    response = pay_again(payer_client, order.out_trade_no)
    assert response.status_code == 409 and response.json()["error"] == "order_wrong_channel"


def test_pay_again_is_throttled_with_the_orders_placed(payer_client, payer, settings):
    settings.RECHARGE_ORDERS_PER_MINUTE_PER_USER = 4
    order = make_order(payer, prepay_id="wx-x", prepay_expires_at=timezone.now() + timedelta(hours=1))
    # Mid-minute, so the per-minute counter does not roll over during the test.
    with time_machine.travel(timezone.now().replace(second=20), tick=False):
        answers = [pay_again(payer_client, order.out_trade_no).status_code for _ in range(4 + 1)]
    assert answers[-1] == 429 and 429 not in answers[:-1]


def test_someone_elses_order_is_not_found(payer_client):
    other = make_order(
        make_user("other", openid="oOther"), prepay_id="wx-x", prepay_expires_at=timezone.now() + timedelta(hours=1)
    )
    response = pay_again(payer_client, other.out_trade_no)
    assert response.status_code == 404 and response.json()["error"] == "order_not_found"


def test_pay_again_needs_post_and_a_csrf_token(payer, sandbox_url):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(payer)
    order = make_order(payer)
    response = strict.get(f"/payments/orders/{order.out_trade_no}/pay/")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "POST"
    response = pay_again(strict, order.out_trade_no)
    assert response.status_code == 403
    assert response.json() == {"error": "csrf_failed", "message": "页面已过期，请刷新后重试"}


# -- a lapsed session ----------------------------------------------------------------------------------------------


def test_a_lapsed_session_gets_401_with_a_sign_in_link_back_to_the_page(client, sandbox_url):
    response = client.post(
        PREPAY,
        {"amount": "10.00"},
        content_type="application/json",
        HTTP_REFERER="http://testserver/orders/20261124080000101234567890/?result=cancel",
    )
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "login_required" and body["message"] == "登录已过期，请重新登录"
    assert body["login_url"] == "/accounts/login/?next=%2Forders%2F20261124080000101234567890%2F%3Fresult%3Dcancel"


@pytest.mark.parametrize("referer", [None, "https://evil.example/phish/", "javascript:alert(1)"])
def test_the_sign_in_link_goes_back_to_recharge_when_the_page_is_not_ours(client, sandbox_url, referer):
    extra = {"HTTP_REFERER": referer} if referer else {}
    for response in (
        client.post(PREPAY, {"amount": "1"}, content_type="application/json", **extra),
        client.get("/payments/orders/X1/status/", **extra),
        client.post("/payments/orders/X1/pay/", **extra),
    ):
        assert response.status_code == 401
        assert response.json()["login_url"] == "/accounts/login/?next=%2Frecharge%2F"


# -- binding WeChat in the middle of a payment ----------------------------------------------------------------------


def test_the_bind_detour_comes_back_to_recharge_with_the_amount_and_a_message(client, sandbox_url):
    user = make_user("demo")
    client.force_login(user)
    response = client.post(PREPAY, {"amount": "30"}, content_type="application/json")
    assert response.status_code == 409 and response.json()["error"] == "openid_required"
    bind_url = response.json()["bind_url"]
    assert parse_qs(urlsplit(bind_url).query)["next"] == ["/recharge/?amount=30.00&bound=1"]

    authorize = client.get(bind_url)["Location"]  # to WeChat (the sandbox), which comes back with a code
    back = requests.get(authorize, cookies={"sandbox_wx_user": "demo"}, allow_redirects=False, timeout=10)
    callback = urlsplit(back.headers["Location"])
    response = client.get(callback.path + "?" + callback.query)
    assert response["Location"] == "/recharge/?amount=30.00&bound=1"
    response = client.get(response["Location"])
    assert response["Location"] == "/recharge/?amount=30.00"
    html = client.get(response["Location"]).content.decode()
    assert "微信已绑定" in html and 'value="30" class="preset__input" checked' in html
    user.refresh_from_db()
    assert user.openid
    assert prepay(client, "30.00")["amount_fen"] == 3000

"""POST /payments/jsapi/prepay/ and GET /payments/orders/<no>/status/, against the sandbox over HTTP."""

from __future__ import annotations

import re

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import LedgerEntry, RechargeOrder
from payments.services import STATUS_POLL_INTERVAL
from tests.factories import make_order, make_user
from tests.helpers import pay_sign_verifies, spy_on_order_queries, wechat_code

pytestmark = pytest.mark.django_db(transaction=True)
PREPAY = "/payments/jsapi/prepay/"


def prepay(client, amount, **kwargs):
    return client.post(PREPAY, data={"amount": amount} if amount is not ... else {}, content_type="application/json", **kwargs)


def status(client, out_trade_no):
    return client.get(f"/payments/orders/{out_trade_no}/status/")


def test_it_places_a_wechat_order_and_answers_signed_pay_params(payer_client):
    response = prepay(payer_client, "19.90")
    assert response.status_code == 200
    body = response.json()
    assert body["amount_fen"] == 1990 and set(body) == {"out_trade_no", "amount_fen", "pay", "pay_params", "order_url"}
    assert body["pay"] == {"kind": "jsapi", "params": body["pay_params"]}
    assert body["order_url"] == f"/orders/{body['out_trade_no']}/"
    assert re.fullmatch(r"20\d{12}10\d{10}", body["out_trade_no"]) and len(body["out_trade_no"]) <= 32
    params = body["pay_params"]
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert pay_sign_verifies(params, settings.WECHAT_APPID)
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    assert trade.total_fee == 1990 and trade.openid == "oPayer0000000000000000000001"
    assert params["package"] == f"prepay_id={trade.prepay_id}"
    order = RechargeOrder.objects.get()
    assert order.status == RechargeOrder.Status.PENDING and order.prepay_id == trade.prepay_id


@pytest.mark.parametrize(("text", "fen"), [("19.90", 1990), ("0.29", 29), ("0.01", 1), ("10", 1000), ("5000.00", 500000)])
def test_yuan_become_exact_fen(payer_client, text, fen):
    assert prepay(payer_client, text).json()["amount_fen"] == fen


@pytest.mark.parametrize(
    "amount",
    [
        "0",
        "-1",
        "0.001",
        "abc",
        "",
        "1e3",
        "NaN",
        "１０",
        "10.",
        ".5",
        " 10",
        None,
        10,
        10.5,
        True,
        ["10"],
        "5000.01",
        "99999999999",
        ...,
    ],
)
def test_bad_amounts_are_refused_with_no_order_and_no_wechat_call(payer_client, amount):
    response = prepay(payer_client, amount)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_amount" and response.json()["message"]
    assert not RechargeOrder.objects.exists() and not Trade.objects.exists()


@pytest.mark.parametrize("body", ["not json", "[1]", '"10"'])
def test_a_body_that_is_not_a_json_object_is_an_invalid_amount(payer_client, body):
    response = payer_client.post(PREPAY, data=body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_amount"


def test_the_same_amount_again_reuses_the_order_and_prepay(payer_client):
    first = prepay(payer_client, "10.00").json()
    again = prepay(payer_client, "10").json()
    assert again["out_trade_no"] == first["out_trade_no"]
    assert again["pay_params"]["package"] == first["pay_params"]["package"]
    other = prepay(payer_client, "30.00").json()
    assert other["out_trade_no"] != first["out_trade_no"]
    assert RechargeOrder.objects.count() == 2 and Trade.objects.count() == 2


def test_without_an_openid_it_asks_to_bind(client, sandbox_url):
    client.force_login(make_user("nobody"))
    response = prepay(client, "10.00")
    assert response.status_code == 409
    assert response.json()["error"] == "openid_required" and "/accounts/wechat/authorize/" in response.json()["bind_url"]
    assert not RechargeOrder.objects.exists()


def test_anonymous_callers_get_401(client, sandbox_url):
    assert prepay(client, "10.00").status_code == 401
    assert prepay(client, "10.00").json()["error"] == "login_required"
    assert status(client, "X").status_code == 401


def test_prepay_needs_post_and_csrf(payer, sandbox_url):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(payer)
    assert strict.get(PREPAY).status_code == 405
    assert prepay(strict, "10.00").status_code == 403


def test_wechat_down_is_502_and_the_retry_reuses_the_order(payer_client, settings, live_server):
    sandbox_base = settings.WECHAT_PAY_BASE_URL
    settings.WECHAT_PAY_BASE_URL = "http://127.0.0.1:9/"  # nothing listens there
    response = prepay(payer_client, "10.00")
    assert response.status_code == 502 and response.json()["error"] == "wechat_unavailable"
    order = RechargeOrder.objects.get()
    assert order.status == RechargeOrder.Status.PENDING and not order.prepay_id
    settings.WECHAT_PAY_BASE_URL = sandbox_base
    again = prepay(payer_client, "10.00").json()
    assert again["out_trade_no"] == order.out_trade_no and RechargeOrder.objects.count() == 1


@pytest.mark.parametrize("endpoint_fault", [{"systemerror_endpoints": "unifiedorder"}])
def test_wechat_systemerror_is_502_with_the_code_and_charges_nothing(payer_client, payer, endpoint_fault):
    Fault.objects.create(out_trade_no="", **endpoint_fault)
    response = prepay(payer_client, "10.00")
    assert response.status_code == 502
    code = wechat_code("SYSTEMERROR", "SYSTEM_ERROR")
    order = RechargeOrder.objects.get()
    assert response.json() == {
        "error": "wechat_error",
        "message": "微信支付下单失败，未扣款，请稍后再试",
        "detail": code,
        "out_trade_no": order.out_trade_no,
    }
    payer.refresh_from_db()
    assert payer.balance == 0 and not LedgerEntry.objects.exists()
    # WeChat answered: it has no such order. Closed as 下单失败; a tap again is a new order.
    assert order.is_refused and order.prepay_error == code
    Fault.objects.all().delete()
    again = prepay(payer_client, "10.00").json()["out_trade_no"]
    assert again != order.out_trade_no and RechargeOrder.objects.get(out_trade_no=again).prepay_id


def test_status_asks_wechat_and_applies_a_payment_whose_notify_has_not_come(payer_client, payer):
    body = prepay(payer_client, "10.00").json()
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    assert status(payer_client, body["out_trade_no"]).json()["status"] == "pending"
    sandbox_services.pay(trade.prepay_id, trade.appid)  # paid at WeChat; the notify is not delivered
    # Within a few seconds of the last query, a poll answers what we know without asking WeChat.
    assert status(payer_client, body["out_trade_no"]).json()["status"] == "pending"
    with time_machine.travel(timezone.now() + STATUS_POLL_INTERVAL, tick=True):
        answer = status(payer_client, body["out_trade_no"]).json()
    order = RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])
    assert answer == {
        "out_trade_no": body["out_trade_no"],
        "status": "paid",
        "confirming": False,
        "amount_fen": 1000,
        "balance_fen": 1000,
        # The order's one JSON shape (RechargeOrder.to_dict), as in the mini program's list.
        "channel": "jsapi",
        "refunded_fen": 0,
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat(),
    }
    payer.refresh_from_db()
    assert payer.balance == 1000 and LedgerEntry.objects.count() == 1
    assert status(payer_client, body["out_trade_no"]).json()["balance_fen"] == 1000


@pytest.mark.parametrize(("end_state", "expected"), [("PAYERROR", "closed"), ("USERPAYING", "pending")])
def test_status_follows_wechats_trade_state(payer_client, end_state, expected):
    body = prepay(payer_client, "10.00").json()
    Fault.objects.create(out_trade_no=body["out_trade_no"], end_state=end_state)
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    sandbox_services.pay(trade.prepay_id, trade.appid)
    assert status(payer_client, body["out_trade_no"]).json()["status"] == expected


def test_status_of_an_order_closed_at_wechat_is_closed(payer_client):
    body = prepay(payer_client, "10.00").json()
    Trade.objects.filter(out_trade_no=body["out_trade_no"]).update(state=Trade.CLOSED)
    assert status(payer_client, body["out_trade_no"]).json()["status"] == "closed"


def test_status_with_a_wrong_total_fee_from_wechat_is_not_applied(payer_client, payer):
    body = prepay(payer_client, "10.00").json()
    Fault.objects.create(out_trade_no=body["out_trade_no"], report_total_fee=1)
    trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
    sandbox_services.pay(trade.prepay_id, trade.appid)
    assert status(payer_client, body["out_trade_no"]).json()["status"] == "pending"
    payer.refresh_from_db()
    assert payer.balance == 0


def test_status_while_wechat_is_down_answers_what_is_known(payer_client, settings):
    body = prepay(payer_client, "10.00").json()
    settings.WECHAT_PAY_BASE_URL = "http://127.0.0.1:9/"
    response = status(payer_client, body["out_trade_no"])
    assert response.status_code == 200 and response.json()["status"] == "pending"


def test_someone_elses_order_is_not_found(payer_client, sandbox_url):
    other = make_order(make_user("other", openid="oOther"))
    response = status(payer_client, other.out_trade_no)
    assert response.status_code == 404 and response.json()["error"] == "order_not_found"
    assert status(payer_client, "NOPE").status_code == 404


def test_right_after_wechat_said_ok_a_poll_may_ask_wechat_every_second(payer_client, payer):
    from datetime import timedelta

    from payments.services import PAID_POLL_INTERVAL

    number = prepay(payer_client, "10.00").json()["out_trade_no"]
    trade = Trade.objects.get(out_trade_no=number)
    with spy_on_order_queries() as query:
        with time_machine.travel(timezone.now(), tick=False) as clock:
            assert status(payer_client, number).json()["status"] == "pending"
            sandbox_services.pay(trade.prepay_id, trade.appid)
            clock.shift(PAID_POLL_INTERVAL + timedelta(milliseconds=1))
            assert status(payer_client, number).json()["status"] == "pending"  # a plain poll waits its 5 s
            answer = payer_client.get(f"/payments/orders/{number}/status/", {"paid": "1"}).json()
    assert answer["status"] == "paid" and answer["balance_fen"] == 1000
    assert query.call_count == 2

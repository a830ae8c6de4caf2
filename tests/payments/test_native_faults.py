"""Native and H5 when things go wrong (docs/paying.md), through the sandbox over HTTP: a QR
code paid after its order was closed here, two devices at once, the way back opened by someone
else, and the JSAPI endpoint inside another WeChat."""

from __future__ import annotations

import pytest
from django.test import Client

from orders.models import RechargeOrder
from payments.models import Incident
from tests.factories import make_user
from tests.payments.test_pay_pages import DESKTOP_UA, PHONE_UA, WECHAT_UA, prepay
from tests.sandbox.phone import scan_and_pay

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_qr_code_paid_after_its_order_was_closed_here_is_credited_with_an_incident(payer_client, payer):
    from devtools.wechat_sandbox.delivery import deliver_due

    body = prepay(payer_client, DESKTOP_UA, amount="19.90").json()
    order = RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])
    assert order.close()  # closed here (its time ran out, say) while the QR code is still on a screen
    assert scan_and_pay(body["pay"]["url"]).status_code == 200  # and WeChat still takes the scan
    deliver_due()  # its payment notify
    order.refresh_from_db()
    payer.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and payer.balance == 1990  # the money is credited, once
    assert Incident.objects.filter(kind=Incident.Kind.PAID_AFTER_CLOSE, order=order).exists()


def test_two_devices_tapping_the_same_amount_share_one_order(payer, payer_client):
    second = Client()
    second.force_login(payer)
    first_body = prepay(payer_client, DESKTOP_UA, amount="30.00").json()
    second_body = prepay(second, DESKTOP_UA, amount="30.00").json()
    assert first_body["out_trade_no"] == second_body["out_trade_no"]
    assert first_body["pay"]["url"] == second_body["pay"]["url"]  # the same QR code, still valid
    assert RechargeOrder.objects.count() == 1


def test_the_way_back_from_h5_opened_by_someone_else_shows_nothing_of_the_order(payer_client):
    body = prepay(payer_client, PHONE_UA).json()
    back = f"/orders/{body['out_trade_no']}/?from=h5"
    assert Client().get(back)["Location"].startswith("/accounts/login/?next=")  # signed out: sign in first
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert stranger.get(back).status_code == 404


def test_the_jsapi_endpoint_refuses_inside_another_wechat(payer, payer_client):
    session = payer_client.session
    session["wechat_current_openid"] = "oSomeoneElse"
    session.save()
    refused = payer_client.post(
        "/payments/jsapi/prepay/", {"amount": "10.00"}, content_type="application/json", HTTP_USER_AGENT=WECHAT_UA
    )
    assert refused.status_code == 409 and refused.json()["error"] == "wechat_mismatch"
    assert not RechargeOrder.objects.exists()

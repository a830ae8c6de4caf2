"""The notification log names the order (and the refund) of every notify as soon as it is
read, whatever became of it: an operator who searches the log by an order number finds
the notify whose processing failed, or that was refused, as surely as the one applied."""

from __future__ import annotations

from unittest import mock

import pytest
from django.utils import timezone

from orders.models import RechargeOrder, Refund
from payments.models import Notification
from tests.factories import make_order, make_user
from tests.helpers import notify_xml
from tests.payments.test_notify_v3 import (  # noqa: F401 (v3_site and wechat_key are fixtures)
    REFUND_URL,
    encrypt,
    envelope,
    refund_resource,
    sign,
    transaction,
    v3_site,
    wechat_key,
)
from tests.payments.test_notify_v3 import URL as V3_URL
from tests.payments.test_refunds import refund_notify

V2_URL = "/payments/wechat/notify/"
V2_REFUND_URL = "/payments/wechat/refund-notify/"
NOTIFICATIONS = "/admin/payments/notification/"


@pytest.fixture(params=["v2", "v3"])
def api(request, settings):
    if request.param == "v3":
        request.getfixturevalue("v3_site")
    return request.param


@pytest.fixture
def order(db, api):
    return make_order(make_user("payer", openid="oPayer"), amount=1990)


@pytest.fixture
def refund(order):
    order.pay("4200000000202611240000000001", order.amount, timezone.now())
    order.refresh_from_db()
    return order.start_refund(500, "测试退款")  # debited here; WeChat is not asked in this test


class WeChat:
    """Posts notifies to the site as WeChat Pay does under one API version, signed with its key."""

    def __init__(self, client, api: str, key):
        self.client, self.api, self.key = client, api, key

    def pay(self, order, forged: bool = False, **fields) -> None:
        if self.api == "v2":
            body = notify_xml(order.out_trade_no, order.amount, key="f" * 32 if forged else None, **fields)
            self.client.post(V2_URL, body, content_type="text/xml")
            return
        body = envelope(encrypt(transaction(order, **fields)))
        headers = sign(body, self.key)
        self.client.generic("POST", V3_URL, body + (b" " if forged else b""), content_type="application/json", **headers)

    def refund(self, refund) -> None:
        if self.api == "v2":
            self.client.post(V2_REFUND_URL, refund_notify(refund), content_type="text/xml")
            return
        body = envelope(encrypt(refund_resource(refund), associated_data="refund"), event_type="REFUND.SUCCESS")
        self.client.generic("POST", REFUND_URL, body, content_type="application/json", **sign(body, self.key))


@pytest.fixture
def wechat(client, api, request):
    return WeChat(client, api, request.getfixturevalue("wechat_key") if api == "v3" else None)


def found_by(admin_client, term: str) -> list[int]:
    """The notification log's rows an operator finds by searching the admin for `term`."""
    response = admin_client.get(NOTIFICATIONS, {"q": term})
    assert response.status_code == 200
    return [row.pk for row in response.context["cl"].result_list]


def test_a_payment_notify_whose_processing_failed_names_its_order_and_is_found_by_it(
    admin_client,
    wechat,
    api,
    order,
):
    with mock.patch.object(RechargeOrder, "pay", side_effect=RuntimeError("disk full")):
        wechat.pay(order)
    log = Notification.objects.get()
    assert (log.api, log.outcome, log.out_trade_no) == (api, "error", order.out_trade_no)
    assert "disk full" in log.traceback
    assert found_by(admin_client, order.out_trade_no) == [log.pk]


def test_a_refund_notify_whose_processing_failed_names_its_order_and_refund_and_is_found_by_both(
    admin_client,
    wechat,
    api,
    refund,
):
    with mock.patch.object(Refund, "settle", side_effect=RuntimeError("disk full")):
        wechat.refund(refund)
    log = Notification.objects.get(kind="refund")
    assert (log.api, log.outcome) == (api, "error") and "disk full" in log.traceback
    assert (log.out_trade_no, log.out_refund_no) == (refund.order.out_trade_no, refund.out_refund_no)
    assert found_by(admin_client, refund.order.out_trade_no) == found_by(admin_client, refund.out_refund_no) == [log.pk]
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PROCESSING


@pytest.mark.parametrize("foreign", ["appid", "mchid"])
def test_a_verified_notify_refused_as_another_merchants_names_the_order_it_carries(
    admin_client,
    wechat,
    api,
    order,
    foreign,
):
    # A wrong WECHAT_APPID or WECHAT_MCH_ID refuses the site's own orders this way.
    field = {("v2", "mchid"): "mch_id"}.get((api, foreign), foreign)
    wechat.pay(order, **{field: "1000000001"})
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid, log.out_trade_no) == ("rejected", True, order.out_trade_no)
    assert found_by(admin_client, order.out_trade_no) == [log.pk]


def test_a_notify_whose_signature_does_not_verify_names_no_order(wechat, order):
    wechat.pay(order, forged=True)  # anyone can post one: what it says is no order's record
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid, log.out_trade_no) == ("rejected", False, "")

"""The registry is the only place a provider is named: a third provider's notify endpoints
come from its own declaration (Provider.NOTIFY_ROUTES), with no view or URL written for it
(docs/architecture.md#adding-a-provider-or-a-pay-method)."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.test import Client
from django.urls import clear_url_caches, reverse

import payments.urls
import payments.views
import wxrecharge.urls
from orders.models import RechargeOrder
from payments.models import Notification
from payments.providers import PROVIDERS, notify_routes
from payments.providers.wechat_v2 import WeChatV2
from tests.factories import make_order, make_user
from tests.helpers import notify_xml
from wxproto import v2 as wxpay


class Acme(WeChatV2):
    """A provider that speaks v2 at its own notify URLs (a stand-in for a third one)."""

    name, api = "acme", "acme"
    NOTIFY_ROUTES = {
        "payment": ("payments/acme/notify/", "acme_notify"),
        "refund": ("payments/acme/refund-notify/", "acme_refund_notify"),
    }


def _reload_urls() -> None:
    for module in (payments.views, payments.urls, wxrecharge.urls, importlib.import_module(settings.ROOT_URLCONF)):
        importlib.reload(module)
    clear_url_caches()


@pytest.fixture
def acme_registered(monkeypatch):
    monkeypatch.setitem(PROVIDERS, "acme", f"{__name__}.Acme")
    _reload_urls()
    yield
    monkeypatch.undo()
    _reload_urls()


def test_every_provider_route_is_served(client):
    for route, name, _, _ in notify_routes():
        assert reverse(f"payments:{name}") == "/" + route
        assert client.get("/" + route).status_code == 405  # a notify is a POST, nothing else


@pytest.mark.django_db
def test_a_third_provider_gets_its_notify_endpoints_from_its_declaration(acme_registered):
    assert reverse("payments:acme_notify") == "/payments/acme/notify/"
    order = make_order(make_user("acme", openid="oAcme"), amount=700)
    answer = Client().post("/payments/acme/notify/", notify_xml(order.out_trade_no, 700), content_type="text/xml")
    assert wxpay.parse_xml(answer.content)["return_code"] == "SUCCESS"
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.user.balance == 700
    assert Notification.objects.get().api == "acme"  # processed again, later, by the same provider


@pytest.mark.django_db
def test_a_notify_goes_the_short_way_past_the_page_middleware_but_not_past_the_headers(client):
    order = make_order(make_user("short", openid="oShort"), amount=300)
    answer = client.post("/payments/wechat/notify/", notify_xml(order.out_trade_no, 300), content_type="text/xml")
    assert wxpay.parse_xml(answer.content)["return_code"] == "SUCCESS"
    assert answer["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in answer  # as every answer
    assert not answer.cookies and "Vary" not in answer  # no session, CSRF or messages work for a server's post
    page = client.get("/payments/wechat/notify-not-a-route/")
    assert page.status_code == 404 and "Content-Security-Policy" in page  # every other request as before

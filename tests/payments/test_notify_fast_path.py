"""The notify URLs' own door in the WSGI application (payments.middleware.NotifyApplication,
what gunicorn serves): past Django's handler, with every guarantee of the handler's way kept.

Each test calls the door as a WSGI server would (an environ in, start_response, the answer
iterated and closed), for API v2 and API v3 notifies.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import threading
from typing import NamedTuple
from unittest import mock

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

import payments.providers
from orders.models import LedgerEntry, RechargeOrder
from payments.middleware import NotifyApplication
from payments.models import Notification
from payments.providers import provider, wechat_v3
from tests.factories import make_order, make_user
from tests.helpers import notify_xml
from tests.payments.test_notify_v3 import URL as V3_URL
from tests.payments.test_notify_v3 import (  # noqa: F401 (v3_site and wechat_key are fixtures)
    encrypt,
    envelope,
    sign,
    transaction,
    v3_site,
    wechat_key,
)
from wxproto import v2 as wxpay

V2_URL = "/payments/wechat/notify/"
# What every answer of the site carries (SecurityMiddleware, and our Content-Security-Policy).
SECURITY_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy", "Content-Security-Policy")


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def door(application=None) -> NotifyApplication:
    """The application gunicorn serves, made after the test's settings (its middleware reads them)."""
    return NotifyApplication(application or WSGIHandler())


def call(app, path: str, body: bytes = b"", *, method: str = "POST", secure: bool = False, **meta: str) -> Answer:
    """One request, as a WSGI server makes it: the answer iterated, then closed."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "443" if secure else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": meta.pop("content_type", "text/xml"),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **meta,
    }
    started = []
    # As Django's test client does: the test's transaction outlives the request, so the
    # connection is not recycled when it starts and ends (the signals are still sent).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            content = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status, headers = started[0]
    return Answer(int(status.split()[0]), dict(headers), content)


def v2_code(answer: Answer) -> str:
    assert answer.status == 200 and answer.headers["Content-Type"] == "text/xml"
    return wxpay.parse_xml(answer.body)["return_code"]


def v3_post(app, body: bytes, headers: dict[str, str]) -> Answer:
    return call(app, V3_URL, body, content_type="application/json", **headers)


@pytest.fixture
def order(db):
    return make_order(make_user("payer", openid="oPayer"), amount=1990)


@pytest.fixture
def v3_order(db, request):
    request.getfixturevalue("v3_site")
    return make_order(make_user("payer3", openid="oPayer3"), amount=1990)


@pytest.fixture
def key(request):
    """The key WeChat signs v3 notifies with (test_notify_v3.py's)."""
    return request.getfixturevalue("wechat_key")


def assert_credited_once(order) -> None:
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PAID and order.user.balance == order.amount
    assert LedgerEntry.objects.filter(order=order).count() == 1


def assert_not_credited(order) -> None:
    order.refresh_from_db()
    order.user.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING and order.user.balance == 0
    assert not LedgerEntry.objects.exists()


# -- the door ------------------------------------------------------------------------------------------


def test_gunicorn_is_served_the_door(settings):
    settings.DEBUG = True  # the module runs the deploy checks, which refuse the sandbox with debug off
    wsgi = importlib.import_module("wxrecharge.wsgi")
    assert isinstance(wsgi.application, NotifyApplication) and isinstance(wsgi.application.application, WSGIHandler)


@pytest.mark.django_db
def test_notify_urls_skip_djangos_handler_and_every_other_url_reaches_it(order):
    handler = WSGIHandler()
    app = door(mock.Mock(wraps=handler))
    assert v2_code(call(app, V2_URL, notify_xml(order.out_trade_no, 1990))) == "SUCCESS"
    assert app.application.call_count == 0
    assert call(app, "/healthz", method="GET").status == 200
    assert call(app, "/payments/wechat/notify-not-a-route/").status == 404
    assert app.application.call_count == 2


@pytest.mark.django_db
def test_each_notify_sends_request_started_and_finished_as_djangos_handler_does(order):
    heard = []

    def started(sender, **kwargs):
        heard.append(("started", sender))

    def finished(sender, **kwargs):
        heard.append(("finished", sender))

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        assert v2_code(call(door(), V2_URL, notify_xml(order.out_trade_no, 1990))) == "SUCCESS"
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    # The database connection is recycled on these, as after any request.
    assert heard == [("started", WSGIHandler), ("finished", WSGIHandler)]


# -- refused: a GET, a huge body, a forged signature ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", [V2_URL, V3_URL, "/payments/wechat/refund-notify/", "/payments/wechat/v3/refund-notify/"])
def test_a_get_is_refused_with_405_and_nothing_recorded(path):
    answer = call(door(), path, method="GET")
    assert answer.status == 405 and answer.headers["Allow"] == "POST"
    assert all(name in answer.headers for name in SECURITY_HEADERS)
    assert not Notification.objects.exists()


def test_a_huge_v2_body_is_refused_and_recorded_cut_short(order):
    answer = call(door(), V2_URL, b"<xml><a>" + b"x" * 200_000 + b"</a></xml>")
    assert v2_code(answer) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert log.outcome == "rejected" and len(log.body) <= 1024  # an unverified body keeps only a prefix


def test_a_huge_v3_body_is_refused_and_recorded_cut_short(v3_order, key):
    body = envelope(encrypt(transaction(v3_order, attach="x" * 200_000)))
    answer = v3_post(door(), body, sign(body, key))
    assert answer.status == 401
    assert_not_credited(v3_order)
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid) == ("rejected", False) and len(log.body) <= 1024


def test_a_forged_v2_notify_is_refused_and_recorded(order):
    answer = call(door(), V2_URL, notify_xml(order.out_trade_no, 1990, key="f" * 32))
    assert v2_code(answer) == "FAIL"
    assert_not_credited(order)
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid, log.remote_addr) == ("rejected", False, "127.0.0.1")


def test_a_forged_v3_notify_is_refused_and_recorded(v3_order, key):
    body = envelope(encrypt(transaction(v3_order)))
    headers = sign(body, key)
    signature = headers["HTTP_WECHATPAY_SIGNATURE"]
    headers["HTTP_WECHATPAY_SIGNATURE"] = ("B" if signature[0] == "A" else "A") + signature[1:]
    answer = v3_post(door(), body, headers)
    assert answer.status == 401 and b"FAIL" in answer.body
    assert_not_credited(v3_order)
    log = Notification.objects.get()
    assert (log.outcome, log.signature_valid) == ("rejected", False)
    assert log.headers["Wechatpay-Signature"] == headers["HTTP_WECHATPAY_SIGNATURE"]  # kept as received


# -- a good notify ---------------------------------------------------------------------------------------


def test_a_good_v2_notify_credits_once_however_often_it_comes(order):
    app, body = door(), notify_xml(order.out_trade_no, 1990)
    assert [v2_code(call(app, V2_URL, body)) for _ in range(3)] == ["SUCCESS"] * 3
    assert_credited_once(order)
    assert list(Notification.objects.order_by("pk").values_list("outcome", flat=True)) == [
        "applied",
        "duplicate",
        "duplicate",
    ]


def test_a_good_v3_notify_credits_once_however_often_it_comes(v3_order, key):
    app, body = door(), envelope(encrypt(transaction(v3_order)))
    answers = [v3_post(app, body, sign(body, key)) for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [(204, b"")] * 3
    assert_credited_once(v3_order)
    logs = Notification.objects.order_by("pk")
    assert [n.outcome for n in logs] == ["applied", "duplicate", "duplicate"]
    assert logs[0].api == "v3" and logs[0].headers["Request-ID"] == "08F0-test"


def test_a_notify_is_recorded_before_anything_else_and_a_failure_stays_on_it(order):
    with mock.patch("payments.notifies.process_payment_notify", side_effect=RuntimeError("boom")):
        assert v2_code(call(door(), V2_URL, notify_xml(order.out_trade_no, 1990))) == "FAIL"
    log = Notification.objects.get()
    assert log.outcome == "error" and "boom" in log.detail and log.traceback
    assert_not_credited(order)


def test_an_exception_past_the_view_is_djangos_500_with_the_headers(order):
    with mock.patch("payments.notifies.receive_notify", side_effect=RuntimeError("boom")):
        answer = call(door(), V2_URL, notify_xml(order.out_trade_no, 1990))
    assert answer.status == 500  # WeChat sends it again
    assert all(name in answer.headers for name in SECURITY_HEADERS)


# -- the headers: as every answer of the site ---------------------------------------------------------------


def test_the_answer_carries_the_headers_djangos_handler_gives_it_and_every_page(client, db):
    body = notify_xml("NOSUCHORDER", 1990)
    fast = call(door(), V2_URL, body)
    by_handler = client.post(V2_URL, body, content_type="text/xml")  # the test client: Django's handler
    page = call(door(), "/accounts/login/", method="GET")
    for name in SECURITY_HEADERS:
        assert fast.headers[name] == by_handler.headers[name], name
    # A page's policy may be its own; the rest are the site's.
    for name in SECURITY_HEADERS[:3]:
        assert fast.headers[name] == page.headers[name], name
    assert fast.body == by_handler.content and "Set-Cookie" not in fast.headers and "Vary" not in fast.headers


@pytest.mark.django_db
def test_https_is_required_as_on_every_page_and_hsts_is_sent(settings, order):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    app = door()
    redirected = call(app, V2_URL, notify_xml(order.out_trade_no, 1990))
    assert redirected.status == 301 and redirected.headers["Location"] == "https://testserver" + V2_URL
    assert not Notification.objects.exists()
    secure = call(app, V2_URL, notify_xml(order.out_trade_no, 1990), secure=True)
    assert v2_code(secure) == "SUCCESS" and secure.headers["Strict-Transport-Security"] == "max-age=3600"


# -- API v3: one provider, one client -------------------------------------------------------------------------


def test_v3_notifies_reuse_one_provider_and_its_client(v3_order, key, monkeypatch):
    monkeypatch.setattr(payments.providers, "_local", threading.local())  # this thread's cache, empty
    made = mock.Mock(wraps=wechat_v3.v3_client)
    monkeypatch.setattr(wechat_v3, "v3_client", made)
    app = door()
    orders = [make_order(make_user(f"v3payer{n}", openid=f"oV3Payer{n}"), amount=100 + n) for n in range(3)]
    for n, order in enumerate(orders):
        fields = transaction(order, transaction_id=f"420000000020261124000000000{n}")
        body = envelope(encrypt(fields))
        for _ in range(2):
            assert v3_post(app, body, sign(body, key)).status == 204
    assert made.call_count == 1  # one client (and its requests session) for six notifies
    assert provider(api="v3") is provider(api="v3")
    for order in orders:
        assert_credited_once(order)


def test_a_setting_changed_or_a_key_file_replaced_makes_a_new_provider(request):
    site = request.getfixturevalue("v3_site")
    first = provider(api="v3")
    assert provider(api="v3") is first
    site.WECHAT_APIV3_KEY = "X" * 32
    second = provider(api="v3")
    assert second is not first and second.merchant.apiv3_key == "X" * 32
    stat = os.stat(site.WECHAT_PAY_PUBLIC_KEY)
    os.utime(site.WECHAT_PAY_PUBLIC_KEY, (stat.st_atime, stat.st_mtime + 10))  # a renewed key, same path
    assert provider(api="v3") is not second

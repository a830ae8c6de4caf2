"""Fixtures that talk to the sandbox over real HTTP, with wechatpy's own clients."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from wechatpy.oauth import WeChatOAuth
from wechatpy.pay import WeChatPay

from sandbox import worker

SUCCESS_XML = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
FAIL_XML = "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"


@pytest.fixture
def sandbox_url(live_server, settings):
    settings.SITE_URL = live_server.url
    return live_server.url + "/sandbox/"


@pytest.fixture
def wxpay(sandbox_url):
    """wechatpy's WeChatPay with our merchant account, pointed at the sandbox."""
    client = WeChatPay(settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID, timeout=10)
    client.API_BASE_URL = sandbox_url
    return client


@pytest.fixture
def wxoauth(sandbox_url):
    client = WeChatOAuth(settings.WECHAT_APPID, settings.WECHAT_APP_SECRET, redirect_uri=settings.SITE_URL + "/cb/")
    client.API_BASE_URL = sandbox_url
    client.OAUTH_BASE_URL = sandbox_url + "connect/"
    return client


class Receiver:
    """A merchant notify endpoint on loopback that answers from a script and records bodies."""

    def __init__(self, answers: list[str] | None = None):
        self.answers = list(answers or [])
        self.received: list[tuple[float, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                import time

                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append((time.monotonic(), body))
                answer = receiver.answers.pop(0) if receiver.answers else SUCCESS_XML
                data = answer.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(answers=None) -> Receiver:
        made.append(Receiver(answers))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def delivery_worker():
    """The in-process delivery thread, as `make run` starts it; stopped after the test."""
    stop = threading.Event()
    started = []

    def start():
        started.append(worker.start(stop))
        return started[-1]

    yield start
    stop.set()
    worker.wake()
    for thread in started:
        thread.join(timeout=10)
    worker._thread = None


def create_order(wxpay, out_trade_no: str, total_fee: int = 1000, notify_url: str = "http://127.0.0.1:9/notify", **extra):
    return wxpay.order.create(
        trade_type="JSAPI", body="余额充值", total_fee=total_fee, notify_url=notify_url, client_ip="127.0.0.1",
        user_id=extra.pop("user_id", "oSandboxUser000000000000001"), out_trade_no=out_trade_no, **extra,
    )

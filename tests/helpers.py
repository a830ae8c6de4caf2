"""Helpers for talking to the sandbox over real HTTP, as WeChat's peers would."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.db import connection

SUCCESS_XML = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
# Marks of a test whose rows race across real connections: it needs PostgreSQL's row locks
# (SQLite serialises writers), so elsewhere it is skipped, saying why.
NEEDS_ROW_LOCKS = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="race tests need PostgreSQL row locks: run with DATABASE_URL=postgres://... (CI does)",
    ),
]
FAIL_XML = "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"


class Receiver:
    """A merchant notify endpoint on loopback that answers from a script and records bodies.

    Each answer is an XML string (sent with HTTP 200), or a `(status, body)` pair, e.g.
    `(500, '{"code": "FAIL", "message": "失败"}')` or `(204, "")` for a v3 notify; when the
    script runs out it answers 200 with SUCCESS_XML. `received` holds (monotonic time,
    body) and `headers` the request headers of each POST, in the same order.
    """

    def __init__(self, answers: list[str | tuple[int, str]] | None = None):
        self.answers = list(answers or [])
        self.received: list[tuple[float, bytes]] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.headers.append(dict(self.headers.items()))
                receiver.received.append((time.monotonic(), body))
                answer = receiver.answers.pop(0) if receiver.answers else SUCCESS_XML
                status, text = answer if isinstance(answer, tuple) else (200, answer)
                data = text.encode()
                self.send_response(status)
                if status != 204:
                    self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/xml")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if status != 204:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def create_order(wxpay, out_trade_no: str, total_fee: int = 1000, notify_url: str = "http://127.0.0.1:9/notify", **extra):
    return wxpay.order.create(
        trade_type="JSAPI",
        body="余额充值",
        total_fee=total_fee,
        notify_url=notify_url,
        client_ip="127.0.0.1",
        user_id=extra.pop("user_id", "oSandboxUser000000000000001"),
        out_trade_no=out_trade_no,
        **extra,
    )


def notify_xml(
    out_trade_no: str,
    total_fee: int,
    *,
    key: str | None = None,
    sign_type: str = "MD5",
    transaction_id: str = "4200000000202611230000000001",
    **overrides,
) -> bytes:
    """A payment notify as WeChat Pay posts it, signed with our key (or `key`)."""
    from django.conf import settings

    from wxproto import v2 as wxpay

    fields = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": wxpay.nonce(),
        "result_code": "SUCCESS",
        "openid": "oTestUser",
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "CMC",
        "total_fee": str(total_fee),
        "fee_type": "CNY",
        "cash_fee": str(total_fee),
        "transaction_id": transaction_id,
        "out_trade_no": out_trade_no,
        "time_end": "20261123120000",
        "sign_type": "" if sign_type == "MD5" else sign_type,
    }
    forced_sign = overrides.pop("sign", None)
    fields.update(overrides)
    fields = {k: v for k, v in fields.items() if v not in ("", None)}
    fields["sign"] = forced_sign or wxpay.sign(fields, key or settings.WECHAT_API_KEY, sign_type)
    return wxpay.to_xml(fields).encode()


def pay_sign_verifies(params: dict[str, str], appid: str) -> bool:
    """What WeChat's client checks before it opens the payment sheet: paySign over the pay
    params, with the API version's rule (v2: the MD5/HMAC sign with the API key; v3: RSA
    over appId, timeStamp, nonceStr and package with the merchant key's public half)."""
    import base64
    from pathlib import Path

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from django.conf import settings

    from wxproto import v2 as wxpay

    if settings.WECHAT_PAY_API == "v3":
        assert params["signType"] == "RSA"
        key = serialization.load_pem_private_key(Path(settings.WECHAT_MCH_PRIVATE_KEY).read_bytes(), None).public_key()
        message = f"{appid}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
        try:
            key.verify(base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True
    assert params["signType"] == settings.WECHAT_SIGN_TYPE
    fields = {k: v for k, v in params.items() if k != "paySign"} | {"appId": appid, "sign": params["paySign"]}
    return wxpay.verify(fields, settings.WECHAT_API_KEY, params["signType"])


def spy_on_order_queries():
    """Patch the configured API version's order query so a test can count the calls (each
    call's args[1] is the out_trade_no)."""
    from unittest import mock

    from django.conf import settings

    from payments.providers.wechat_v2 import WeChatV2
    from payments.providers.wechat_v3 import WeChatV3

    cls = WeChatV3 if settings.WECHAT_PAY_API == "v3" else WeChatV2
    return mock.patch.object(cls, "query", autospec=True, side_effect=cls.query)


def wechat_code(v2: str, v3: str) -> str:
    """WeChat's error code for the same fault under the configured API version."""
    from django.conf import settings

    return v3 if settings.WECHAT_PAY_API == "v3" else v2


def race(workers: list) -> list:
    """Start all workers at once, each on its own database connection; return their results
    (an exception a worker raised is its result)."""
    from django.db import connections

    barrier = threading.Barrier(len(workers))
    results: list = [None] * len(workers)

    def run(i, work):
        try:
            barrier.wait()
            results[i] = work()
        except Exception as exc:  # reported through results
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


@contextmanager
def clear_of_midnight():
    """Yields today's date in Beijing, the day a test's trades happen on; a test started in
    the last minutes of a day runs in the first minutes of the next, so that all its trades
    (and the day's bill) fall on one day."""
    from django.utils import timezone

    from wxproto.beijing import BEIJING

    now = timezone.localtime(timezone.now(), BEIJING)
    if now.hour == 23 and now.minute >= 55:
        with time_machine.travel(now.replace(hour=0, minute=0, second=5) + timedelta(days=1), tick=True):
            yield timezone.localdate(timezone.now(), BEIJING)
    else:
        yield now.date()


def subprocess_env(site_url: str) -> dict[str, str]:
    """The environment for a management command run as its own process against this test's
    database (the test settings, debug on, `site_url` as SITE_URL)."""
    import os

    from django.db import connection

    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", SITE_URL=site_url, DJANGO_DEBUG="1")
    return env

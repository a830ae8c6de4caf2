"""Helpers for talking to the sandbox over real HTTP, as WeChat's peers would."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUCCESS_XML = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
FAIL_XML = "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[busy]]></return_msg></xml>"


class Receiver:
    """A merchant notify endpoint on loopback that answers from a script and records bodies."""

    def __init__(self, answers: list[str] | None = None):
        self.answers = list(answers or [])
        self.received: list[tuple[float, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
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



def create_order(wxpay, out_trade_no: str, total_fee: int = 1000, notify_url: str = "http://127.0.0.1:9/notify", **extra):
    return wxpay.order.create(
        trade_type="JSAPI", body="余额充值", total_fee=total_fee, notify_url=notify_url, client_ip="127.0.0.1",
        user_id=extra.pop("user_id", "oSandboxUser000000000000001"), out_trade_no=out_trade_no, **extra,
    )

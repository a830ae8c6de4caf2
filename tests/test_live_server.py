"""The test suite's live server (tests/conftest.py): a request it began is finished, its
database connection closed, before the test that made it ends."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit


def test_a_request_being_read_keeps_the_server_busy_until_it_is_answered_and_closed(live_server):
    server = live_server.thread.httpd
    address = urlsplit(live_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: {address.netloc}\r\n".encode())
        # Its headers are not finished: the server is in the middle of the request.
        with server.idle:
            assert server.idle.wait_for(lambda: server.in_flight == 1, timeout=5)
        assert not server.wait_idle(timeout=0.2)
        conn.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert server.wait_idle(timeout=5)

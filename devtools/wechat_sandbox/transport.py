"""Calls from this site to its own sandbox, answered in the same process.

Under gunicorn's sync workers, a request that calls WeChat holds its worker while the
call waits for an answer; when "WeChat" is this same server's /sandbox/, the answer needs
another free worker, and with all of them busy placing orders every call waits until it
times out (an outside test: 30 of 40 prepays answered 502). Mounted on the WeChat
clients' requests sessions, this adapter hands such calls to Django's request handler
directly, so the sandbox never needs a second worker. Only the sandbox's own URLs go
through it; real WeChat is reached over the network as always.
"""

from __future__ import annotations

import io
from urllib.parse import unquote, urlsplit

import requests
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

_handler: BaseHandler | None = None


def _get_handler() -> BaseHandler:
    global _handler
    if _handler is None:
        handler = BaseHandler()
        handler.load_middleware()
        _handler = handler
    return _handler


class InProcessAdapter(BaseAdapter):
    """A requests adapter that answers with this Django site, without a socket."""

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        url = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        environ = {
            # PATH_INFO decoded as a WSGI server decodes it; RAW_URI (as gunicorn sets it) keeps
            # the path and query as sent, which an API v3 signature covers.
            "REQUEST_METHOD": request.method,
            "PATH_INFO": unquote(url.path, encoding="latin-1"),
            "RAW_URI": url.path + (f"?{url.query}" if url.query else ""),
            "QUERY_STRING": url.query,
            "SERVER_NAME": url.hostname or "127.0.0.1",
            "SERVER_PORT": str(url.port or 80),
            "REMOTE_ADDR": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": url.scheme,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        }
        for name, value in request.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value
        # get_response() sends no request_started/finished signals, so the caller's database
        # connection is left alone (closing it is the outer request's business).
        answer = _get_handler().get_response(WSGIRequest(environ))
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(dict(answer.items()))
        response._content = answer.content
        response.encoding = answer.charset
        response.url = request.url
        response.request = request
        response.reason = answer.reason_phrase
        return response

    def close(self):
        pass


def mount(session: requests.Session) -> requests.Session:
    """Answer the session's calls to this site's /sandbox/ in process (when the sandbox is on)."""
    if settings.WECHAT_SANDBOX and settings.SANDBOX_IN_PROCESS:
        session.mount(settings.SITE_URL + "/sandbox/", InProcessAdapter())
    return session

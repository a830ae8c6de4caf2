"""Request guards that every view relies on."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpResponse

from wxrecharge.http import json_error

logger = logging.getLogger(__name__)

# Paths whose clients read JSON (the pages' fetch calls and the mini-program API).
JSON_PREFIXES = ("/api/", "/payments/jsapi/", "/payments/orders/")
# WeChat's notifies are recorded whatever their bytes (payments/views.py).
RAW_BODY_PREFIXES = ("/payments/wechat/",)


def _is_json(request) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def _has_nul(query) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in query.lists())


class RejectNulMiddleware:
    """A NUL character in the path, the query or a form field is refused with 400.

    PostgreSQL cannot store or compare "\\x00" in text: such a value reaching a lookup
    (an order number in the URL, a login name) would be a 500.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._has_nul(request):
            if _is_json(request):
                return json_error("invalid_request", 400, "请求包含无效字符")
            return HttpResponse("请求包含无效字符", status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _has_nul(request) -> bool:
        if "\x00" in request.path or _has_nul(request.GET):
            return True
        return (request.method == "POST" and not request.path.startswith(RAW_BODY_PREFIXES)
                and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
                and _has_nul(request.POST))


class JsonErrorsMiddleware:
    """JSON endpoints answer JSON even when something failed: a database that is busy or down
    is a 503 the page can explain, never Django's HTML 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not _is_json(request):
            return None
        logger.exception("%s %s failed", request.method, request.path)
        if isinstance(exception, DatabaseError):
            return json_error("server_busy", 503)
        return json_error("server_error", 500)

"""Request guards that every view relies on."""

from __future__ import annotations

import logging

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from django.shortcuts import render

from common.http import MESSAGES, json_error

logger = logging.getLogger(__name__)

# Paths whose clients read JSON (the pages' fetch calls and the mini-program API).
JSON_PREFIXES = ("/api/", "/payments/jsapi/", "/payments/orders/")
# The merchant API's errors have its own shape (wallet/api.py).
MERCHANT_API_PREFIX = "/api/v1/"
# WeChat's notifies are recorded whatever their bytes (payments/views.py).
RAW_BODY_PREFIXES = ("/payments/wechat/",)

# What a JSON endpoint's error without a JSON body of its own (a 404 from the URL
# resolver, a 405 from @require_POST...) is called.
STATUS_ERRORS = {
    400: "invalid_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    500: "server_error",
    503: "server_busy",
}
# Exceptions Django itself turns into a 4xx answer.
HTTP_EXCEPTIONS = (Http404, PermissionDenied, SuspiciousOperation, BadRequest)


def is_json_request(request) -> bool:
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
            if is_json_request(request):
                return _error(request, "invalid_request", 400, "请求包含无效字符")
            return render(request, "400.html", {"message": "请求包含无效字符。"}, status=400)
        return self.get_response(request)

    @staticmethod
    def _has_nul(request) -> bool:
        if "\x00" in request.path or _has_nul(request.GET):
            return True
        return (
            request.method == "POST"
            and not request.path.startswith(RAW_BODY_PREFIXES)
            and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
            and _has_nul(request.POST)
        )


class JsonErrorsMiddleware:
    """JSON endpoints answer JSON even when something failed: a database that is busy or down
    is a 503 the page can explain, never Django's HTML 500; an unknown URL or a wrong method
    is a JSON 404 or 405, so a page's fetch can always show `message`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and is_json_request(request)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return self._as_json(response, request)
        return response

    @staticmethod
    def _as_json(response, request):
        status = response.status_code
        code = STATUS_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request")
        answer = _error(request, code, status)
        if response.has_header("Allow"):
            answer["Allow"] = response["Allow"]
        return answer

    def process_exception(self, request, exception):
        # A 4xx exception becomes Django's answer first, then JSON in __call__ (not a logged 500).
        if not is_json_request(request) or isinstance(exception, HTTP_EXCEPTIONS):
            return None
        logger.exception("%s %s failed", request.method, request.path)
        if isinstance(exception, DatabaseError):
            return _error(request, "server_busy", 503)
        return _error(request, "server_error", 500)


def _error(request, code: str, status: int, message: str | None = None):
    """The JSON error of the endpoint's API: the merchant API's `{"error": {"code", "message"}}`
    (docs/merchant-api.md), or the pages' and mini program's `{"error", "message"}`."""
    if request.path.startswith(MERCHANT_API_PREFIX):
        body = {"error": {"code": code, "message": message or MESSAGES[code]}}
        return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    return json_error(code, status, message)

"""The merchant API takes the short way through the middleware, as WeChat's notifies do
(payments/middleware.py): a call from the merchant's server carries no cookie, session,
user, CSRF token or page, so the sessions, authentication, messages, CSRF, lockout,
static-file and page-error middleware have nothing to do for it. Placed after Django's
SecurityMiddleware and our Content-Security-Policy, this resolves a /api/v1/ path with the
URLconf and calls its view (a NUL in the path or query is refused first, as
wxrecharge/middleware.py refuses it for the pages); an unknown path goes on as usual (its JSON 404 comes from
wxrecharge/middleware.py), and anything a view raises is the API's JSON 500.
"""

from __future__ import annotations

import logging

from django.urls import Resolver404, resolve

from wallet.api import PREFIX, _answer, error_body

logger = logging.getLogger(__name__)


class MerchantApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        if "\x00" in request.path_info or "\x00" in request.GET.urlencode() or "%00" in request.META.get("QUERY_STRING", ""):
            # The database cannot keep a NUL: refused here, as the pages' guard refuses it there.
            return _answer(400, error_body("invalid_request", "请求包含无效字符"))
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "merchant_api", False):
            return self.get_response(request)
        try:
            return match.func(request, *match.args, **match.kwargs)
        except Exception:
            logger.exception("%s %s failed", request.method, request.path)
            return _answer(500, error_body("server_error"))

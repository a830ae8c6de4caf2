"""The merchant API takes the short way through the middleware, as WeChat's notifies do
(payments/middleware.py): a call from the merchant's server carries no cookie, session, user,
CSRF token or page, so the sessions, authentication, messages, CSRF, lockout and page-error
middleware have nothing to do for it. Placed after Django's SecurityMiddleware, our
Content-Security-Policy, WhiteNoise and the NUL guard (wxrecharge/middleware.py, which answers
in the API's own shape), this resolves a /api/v1/ path with the URLconf and calls its view;
an unknown path goes on as usual (its JSON 404 comes from wxrecharge/middleware.py), and
anything a view raises is the API's JSON 500.
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

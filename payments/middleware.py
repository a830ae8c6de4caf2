"""WeChat Pay's notifies take the short way through the middleware.

A notify is one server posting to another: it carries no cookie, session, user, CSRF
token or page, so the sessions, authentication, messages, CSRF, lockout, static-file and
page-error middleware have nothing to do for it, yet running them cost about a tenth of a
notify's time (bench/notify_vs_baseline.py). Placed right after Django's
SecurityMiddleware and our Content-Security-Policy (which still apply: HTTPS redirect,
security headers on every answer), this hands a request for one of the providers' notify
URLs (Provider.NOTIFY_ROUTES, exactly as payments/urls.py routes them) straight to its
view; every other request goes on as usual.
"""

from __future__ import annotations

from django.urls import reverse

from payments import views
from payments.providers import notify_routes


class NotifyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        # The paths as the URLconf reverses them (where payments/urls.py is included).
        self.views = {reverse(f"payments:{name}"): views.NOTIFY_VIEWS[route] for route, name, _, _ in notify_routes()}

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        return view(request)

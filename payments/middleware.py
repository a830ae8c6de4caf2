"""WeChat Pay's notifies take the short way to their views.

A notify is one server posting to another: it carries no cookie, session, user, CSRF
token or page, so the sessions, authentication, messages, CSRF, lockout, static-file and
page-error middleware have nothing to do for it, and neither has Django's URL resolving.
Two doors, one route table (the providers' notify URLs, Provider.NOTIFY_ROUTES, exactly as
payments/urls.py routes them):

- `NotifyApplication` wraps the WSGI application (wxrecharge/wsgi.py: gunicorn, runserver):
  a notify URL is served beside Django's handler, by the middleware that comes before
  NotifyMiddleware in settings.MIDDLEWARE (SecurityMiddleware and our Content-Security-
  Policy: the HTTPS redirect and the security headers, as on every answer) and then its
  view, with what Django's handler does around any request (the request_started and
  request_finished signals, which recycle the database connection; an exception turned
  into Django's 500; error answers logged). Every other request goes to Django's handler.
- `NotifyMiddleware`, in settings.MIDDLEWARE, does the same for whatever runs Django's
  handler itself (the test client, a test's live server, the sandbox's in-process calls).
"""

from __future__ import annotations

from django.conf import settings
from django.core import signals
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest, get_script_name
from django.urls import reverse, set_script_prefix
from django.utils.log import log_response
from django.utils.module_loading import import_string

from payments import views
from payments.providers import notify_routes

NOTIFY_MIDDLEWARE = "payments.middleware.NotifyMiddleware"


def notify_views() -> dict:
    """URL path (as the URLconf reverses it, where payments/urls.py is included) -> its notify view."""
    return {reverse(f"payments:{name}"): views.NOTIFY_VIEWS[route] for route, name, _, _ in notify_routes()}


class NotifyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.views = notify_views()

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        return view(request)


class NotifyApplication:
    """WSGI: the notify URLs past Django's handler, everything else to `application`."""

    def __init__(self, application):
        self.application = application
        # Answers tell request_finished the handler's class, as Django's handler does.
        self.handler_class = type(application)
        self.views = notify_views()
        # The middleware a notify passes in Django's handler, each wrapped as Django wraps it.
        handler = convert_exception_to_response(self._view)
        for path in reversed(settings.MIDDLEWARE[: settings.MIDDLEWARE.index(NOTIFY_MIDDLEWARE)]):
            try:
                handler = convert_exception_to_response(import_string(path)(handler))
            except MiddlewareNotUsed:
                continue
        self.handler = handler

    def _view(self, request):
        return self.views[request.path_info](request)

    def __call__(self, environ, start_response):
        # PATH_INFO as the server decoded it: the notify paths are ASCII, where Django's
        # path_info is the same string.
        if environ.get("PATH_INFO") not in self.views:
            return self.application(environ, start_response)
        set_script_prefix(get_script_name(environ))
        signals.request_started.send(sender=self.handler_class, environ=environ)
        request = WSGIRequest(environ)
        response = self.handler(request)
        response._handler_class = self.handler_class
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        # The server closes it when the answer is sent: request_finished, as for any answer.
        return response

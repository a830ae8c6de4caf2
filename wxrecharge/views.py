from __future__ import annotations

import logging

from django.contrib import admin
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from common.http import json_error
from wxrecharge.middleware import is_json_request

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request):
    """Answer ok only after the database has answered a query. HEAD too: load balancers probe with it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("healthz: database query failed")
        return JsonResponse({"status": "error", "detail": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def csrf_failure(request, reason: str = ""):
    """CSRF_FAILURE_VIEW: a page's fetch gets JSON it can show; a form gets a page with a way on."""
    logger.info("CSRF check failed for %s %s: %s", request.method, request.path, reason)
    if is_json_request(request):
        return json_error("csrf_failed", 403)
    # "刷新页面" reloads the page whose form was sent (a fresh token comes with it).
    referer = request.headers.get("Referer", "")
    same_site = url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return render(request, "403_csrf.html", {"retry_url": referer if same_site else ""}, status=403)


def permission_denied(request, exception=None):
    """handler403: an operator refused an admin page (a role without that permission) stays in
    the admin, with its header and a way back to its start page; everyone else gets the member
    site's page (templates/403.html)."""
    if request.path.startswith(reverse("admin:index")):
        context = {**admin.site.each_context(request), "title": "没有权限"}
        return render(request, "admin/403.html", context, status=403)
    return defaults.permission_denied(request, exception)

"""The health panel on the admin's start page (first on it), the alert log and the background
jobs' heartbeats: read-only, for superusers and whoever holds `health.view_health`."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import admin
from django.http import HttpRequest
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.text import Truncator

from common.admin import ReadOnlyAdmin, changelist_url, start_page_panel, when
from common.health import RED, WARN
from common.models import Heartbeat
from health.checks import JOBS, WATCHER, JobState, ago, duration, jobs, snapshot
from health.models import Alert

VIEW = "health.view_health"
_ORDER = {RED: 0, WARN: 1}
_LABELS = {job.name: job.label for job in [*JOBS, WATCHER]}


class HealthViewable:
    """Admin pages that `health.view_health` opens too (the panel links to them)."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(VIEW) or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return request.user.has_perm(VIEW) or super().has_module_permission(request)


@admin.register(Alert)
class AlertAdmin(HealthViewable, ReadOnlyAdmin):
    list_display = ("created_at", "label", "outcome", "channels", "held_back", "short_text")
    list_filter = ("outcome", "kind")
    fields = ("created_at", "kind", "label", "text", "held_back", "channels", "outcome", "error", "sent_at")
    readonly_fields = fields

    @admin.display(description="内容")
    def short_text(self, obj: Alert) -> str:
        return Truncator(" ".join(obj.text.splitlines()[1:2])).chars(60)


@admin.register(Heartbeat)
class HeartbeatAdmin(HealthViewable, ReadOnlyAdmin):
    list_display = ("job_label", "job", "interval_display", "succeeded", "failed", "last_error", "host", "pid")
    fields = ("job", "interval", "started_at", "finished_at", "succeeded_at", "failed_at", "last_error", "host", "pid")
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        # A job retired for good stays red until its row is deleted.
        return request.user.has_perm("common.delete_heartbeat")

    @admin.display(description="名称")
    def job_label(self, obj: Heartbeat) -> str:
        return _LABELS.get(obj.job, "-")

    @admin.display(description="间隔", ordering="interval")
    def interval_display(self, obj: Heartbeat) -> str:
        return duration(obj.interval)

    @admin.display(description="最近一次成功", ordering="succeeded_at")
    def succeeded(self, obj: Heartbeat) -> str:
        return when(obj.succeeded_at)

    @admin.display(description="最近一次出错", ordering="failed_at")
    def failed(self, obj: Heartbeat) -> str:
        return when(obj.failed_at)


@start_page_panel
def _health(request: HttpRequest) -> dict:
    """Red rows first; all well: one green line and the rows folded away."""
    if not request.user.has_perm(VIEW):
        return {}
    now = timezone.now()
    checks = snapshot(now)
    rows = sorted((c for c in checks if not c.kind.startswith("job:")), key=lambda c: _ORDER.get(c.state, 2))
    jobs_url = changelist_url(Heartbeat)
    return {
        "health": {
            "red": sum(c.is_red for c in checks),
            # Each row with whether its link is kept: only where this operator may follow it.
            "rows": [(c, not c.url or may_open(request, c.url)) for c in rows],
            "jobs": [_job_row(state, now) for state in jobs(now)],
            "jobs_url": jobs_url if may_open(request, jobs_url) else "",
        }
    }


def may_open(request: HttpRequest, url: str) -> bool:
    """Whether this operator may open the admin list at `url`: its ModelAdmin's own check (财务
    reads the panel, not the webhook deliveries). Another page (the start page) checks itself."""
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return False
    model_admin = getattr(match.func, "model_admin", None)  # set by ModelAdmin.get_urls
    return model_admin is None or model_admin.has_view_or_change_permission(request)


def _job_row(state: JobState, now) -> dict:
    return {
        "name": state.job.name,
        "label": state.job.label,
        "state": state.state,
        "short": state.short,
        "last_success": ago(state.succeeded_at, now),
        "every": duration(state.interval),
        "detail": state.detail,
    }

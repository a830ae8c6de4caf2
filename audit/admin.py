"""The audit log in the admin: a list to read and filter, nothing to add, change or delete
(for anyone, superusers included); and each operator's own latest actions on the start page."""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from audit.log import describe
from audit.models import AuditEntry
from common.admin import ReadOnlyAdmin, changelist_url, start_page_panel, when

# The start page's 最近动作 shows this many of the operator's own rows.
RECENT_ACTIONS = 10


def object_type_name(object_type: str) -> str:
    """An object type ("accounts.user") as operators know it (用户); the stored text when no
    model has that name (an object type written by hand, a model since removed)."""
    try:
        return str(apps.get_model(object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        return object_type


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("moment", "actor_name", "action", "object_repr", "change_list", "reason", "address")
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    exact_search_fields = ("actor_name", "object_id", "object_repr")
    date_hierarchy = None
    fields = ("at", "actor_name", "address", "action", "object_type_display", "object_id", "object_repr", "change_list", "reason")
    readonly_fields = fields
    list_per_page = 100

    @admin.display(description="时间", ordering="at")
    def moment(self, obj: AuditEntry) -> str:
        return when(obj.at)

    @admin.display(description="对象类型")
    def object_type_display(self, obj: AuditEntry) -> str:
        return object_type_name(obj.object_type) if obj.object_type else "-"

    @admin.display(description="变更")
    def change_list(self, obj: AuditEntry) -> str:
        return format_html_join("", "<div>{}：{}</div>", ((name, describe(value)) for name, value in obj.changes.items()))


@start_page_panel
def _my_actions(request: HttpRequest) -> dict:
    """最近动作 beside the start page: this operator's latest audit rows (what they did is in
    the audit log, not in Django's LogEntry), and the whole list of them for one who may read it."""
    user = request.user
    rows = list(AuditEntry.objects.filter(actor=user).order_by("-at", "-pk")[:RECENT_ACTIONS]) if user.is_authenticated else []
    may_read = user.has_perm("audit.view_auditentry")
    return {"my_actions": {"rows": rows, "url": changelist_url(AuditEntry, actor=user.pk) if may_read and rows else ""}}

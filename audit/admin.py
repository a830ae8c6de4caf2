"""The audit log in the admin: a list to read and filter, nothing to add, change or delete
(for anyone, superusers included)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from audit.log import describe
from audit.models import AuditEntry
from common.admin import ReadOnlyAdmin, when


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("moment", "actor_name", "action", "object_repr", "change_list", "reason", "address")
    list_filter = ("action", ("at", admin.DateFieldListFilter))
    exact_search_fields = ("actor_name", "object_id", "object_repr")
    date_hierarchy = None
    fields = ("at", "actor_name", "address", "action", "object_type", "object_id", "object_repr", "change_list", "reason")
    readonly_fields = fields
    list_per_page = 100

    @admin.display(description="时间", ordering="at")
    def moment(self, obj: AuditEntry) -> str:
        return when(obj.at)

    @admin.display(description="变更")
    def change_list(self, obj: AuditEntry) -> str:
        return format_html_join("", "<div>{}：{}</div>", ((name, describe(value)) for name, value in obj.changes.items()))

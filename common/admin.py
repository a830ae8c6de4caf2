"""What the apps' admin modules share: bases for large and read-only tables, link helpers,
and the start page's panels, which each app contributes (`start_page_panel`) so that the
admin site, which is wiring, imports no app to show them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

# At most this many rows a search term may match in one field (an identifier matches one).
SEARCH_LIMIT = 1000


class LargeTableAdmin(admin.ModelAdmin):
    """A changelist that costs the same at 100 rows and at 100,000.

    No count of the whole table under the filters (`show_full_result_count`), and search
    by exact identifiers (order numbers, ids, usernames), which indexes answer, instead of
    Django's case-insensitive `icontains` over every field, which scans the table.
    """

    show_full_result_count = False
    # Fields a search term is compared with exactly (also shown as search_fields).
    exact_search_fields: tuple[str, ...] = ()

    def get_search_fields(self, request):
        return self.exact_search_fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term or not self.exact_search_fields:
            return queryset, False
        # One indexed lookup per field, then the union of their ids: an OR across fields of
        # two tables makes PostgreSQL scan the whole orders table instead.
        model = queryset.model
        ids: set[int] = set()
        for field in self.exact_search_fields:
            ids.update(model._default_manager.filter(**{field: term}).values_list("pk", flat=True)[:SEARCH_LIMIT])
        return queryset.filter(pk__in=ids), False


class ReadOnlyAdmin(LargeTableAdmin):
    """Records that only change through the site's own flows (ledger, logs, WeChat's side)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """Related rows shown on a record's page; they change only through their own flows."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def change_url(obj: Model) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def changelist_url(model: type[Model], **params: object) -> str:
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def link_to(url: str, text: object) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


def link(obj: Model | None, text: object = None) -> str:
    """A link to a record's admin page, or "-" when there is none."""
    if obj is None:
        return "-"
    return link_to(change_url(obj), text if text is not None else obj)


def when(moment: datetime | None) -> str:
    """A time for a list column: ASCII, so that a narrow column breaks it at the space only."""
    return "-" if moment is None else timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


# -- the start page's panels -----------------------------------------------------------------

# Each takes the request and answers the context its part of the start page needs (an
# empty dict when this operator may not see it); templates/admin/index.html shows them.
Panel = Callable[[HttpRequest], dict]
START_PAGE_PANELS: list[Panel] = []


def start_page_panel(panel: Panel) -> Panel:
    """Register a start page panel (a decorator, used in an app's admin module)."""
    START_PAGE_PANELS.append(panel)
    return panel


def start_page_context(request: HttpRequest) -> dict:
    context: dict = {}
    for panel in START_PAGE_PANELS:
        context.update(panel(request))
    return context


# -- actions that ask first ------------------------------------------------------------------


def confirm_with_reason(model_admin, request: HttpRequest, queryset, *, title: str, description: str, confirm_label: str):
    """An action on selected records that moves money or state asks first: a page listing them
    with a reason to give. Answers (the reason, None) once confirmed with one, else (None, the
    page to show)."""
    reason = request.POST.get("reason", "").strip()
    if request.POST.get("confirm") == "yes" and reason:
        return reason[:200], None
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "description": description,
        "confirm_label": confirm_label,
        "objects": list(queryset[:100]),
        "action_name": request.POST.get("action", ""),
        "reason": reason,
        "error": "请填写原因" if request.POST.get("confirm") == "yes" else "",
    }
    return None, TemplateResponse(request, "admin/wx_confirm_action.html", context)

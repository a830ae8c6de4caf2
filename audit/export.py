"""Exports of an admin list for finance (docs/operations.md#导出): what the list shows under its
filters and search, every row (not one page), as CSV (UTF-8 with a BOM, so that Excel opens it
in Chinese) or as .xlsx. Both are streamed: rows are read from the database in chunks and
written out as they come, so a million rows do not fill memory. Each export needs the
`audit.export_data` permission and is written to the audit log.

An admin takes part with `ExportMixin` and its `export_columns`: (header, function of a row).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone

from audit import log as audit

EXPORT_PERMISSION = "audit.export_data"
FORMATS = ("csv", "xlsx")
CHUNK = 2000
Column = tuple[str, Callable[[Any], object]]


class _Line:
    """A file-like object whose write() hands back what it was given (csv.writer into a stream)."""

    def write(self, value: str) -> str:
        return value


def csv_rows(headers: list[str], rows: Iterable[list]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(headers)
    for row in rows:
        yield writer.writerow(row)


def xlsx_file(title: str, headers: list[str], rows: Iterable[list]):
    """An .xlsx in a temporary file (openpyxl's write-only mode keeps no rows in memory)."""
    # Imported here: openpyxl was a seventh of every process's start (the admin loads this
    # module), and only an Excel export needs it.
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    spool = tempfile.TemporaryFile()
    book.save(spool)
    spool.seek(0)
    return spool


def cell(value: object) -> object:
    """A value as a spreadsheet cell: times in Beijing wall-clock text, None as empty."""
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else value


class ExportMixin:
    """Adds 导出 CSV / 导出 Excel to a changelist (its template shows the links to those
    who may export) at <changelist>/export/<format>/?<the list's own parameters>."""

    export_columns: list[Column] = []
    export_name = "export"

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def get_urls(self):
        meta = self.model._meta  # type: ignore[attr-defined]
        view = self.admin_site.admin_view(self.export_view)  # type: ignore[attr-defined]
        export = path("export/<str:fmt>/", view, name=f"{meta.app_label}_{meta.model_name}_export")
        return [export, *super().get_urls()]  # type: ignore[misc]

    def changelist_view(self, request, extra_context=None):
        context = dict(extra_context or {})
        if self.has_export_permission(request):
            query = request.GET.urlencode()
            context["export_links"] = [
                (f"导出 {label}", f"export/{fmt}/" + (f"?{query}" if query else ""))
                for fmt, label in (("csv", "CSV"), ("xlsx", "Excel"))
            ]
        return super().changelist_view(request, context)  # type: ignore[misc]

    def export_view(self, request, fmt: str):
        if not self.has_export_permission(request) or not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        if fmt not in FORMATS:
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        queryset = changelist.get_queryset(request)
        headers = [header for header, _ in self.export_columns]
        count = queryset.count()
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        filename = f"{self.export_name}-{stamp}.{fmt}"
        filters = {name: value for name, value in request.GET.items()}
        audit.record(
            "export",
            request=request,
            object_type=f"{queryset.model._meta.app_label}.{queryset.model._meta.model_name}",
            object_repr=f"{queryset.model._meta.verbose_name} {count} 行（{fmt}）",
            changes={"筛选": filters or "全部", "行数": count},
        )
        if not count:
            self.message_user(request, "没有符合条件的记录可导出，请调整筛选条件", messages.WARNING)  # type: ignore[attr-defined]
            return redirect(request.path.rsplit("export/", 1)[0] + (f"?{request.GET.urlencode()}" if request.GET else ""))
        rows = ([cell(get(row)) for _, get in self.export_columns] for row in queryset.iterator(chunk_size=CHUNK))
        if fmt == "csv":
            response = StreamingHttpResponse(csv_rows(headers, rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        spool = xlsx_file(str(queryset.model._meta.verbose_name), headers, rows)
        return FileResponse(
            spool,
            as_attachment=True,
            filename=filename,
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )

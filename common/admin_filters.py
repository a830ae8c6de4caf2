"""List filters that take typed ranges (a date range, an amount range) for the admin's large
lists: each is a small GET form beside Django's link filters, keeping the list's other
filters and search. A bad value is ignored and said so, never a 500."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.utils import timezone

from common.money import parse_yuan


def _last(value) -> str:
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value)


class RangeFilter(admin.FieldListFilter):
    """`<field>__from` and `<field>__to`, typed in a form (template admin/filters/range.html)."""

    template = "admin/filters/range.html"
    input_type = "date"
    placeholder = ("开始", "结束")

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.name_from, self.name_to = f"{field_path}__from", f"{field_path}__to"
        super().__init__(field, request, params, model, model_admin, field_path)  # takes our parameters
        self.values = {name: _last(self.used_parameters.get(name, "")) for name in (self.name_from, self.name_to)}
        self.error = ""

    def expected_parameters(self):
        return [self.name_from, self.name_to]

    def has_output(self) -> bool:
        return True

    @property
    def value_from(self) -> str:
        return self.values[self.name_from]

    @property
    def value_to(self) -> str:
        return self.values[self.name_to]

    def choices(self, changelist):
        # The form keeps the list's other parameters (filters, search, sort) as hidden fields.
        self.kept_params = [
            (name, value)
            for name, values in changelist.params.items()
            if name not in (self.name_from, self.name_to, "p")
            for value in (values if isinstance(values, list) else [values])
        ]
        # Django's "全部" link (the filter cleared).
        yield {
            "selected": not any(self.values.values()),
            "query_string": changelist.get_query_string(remove=[self.name_from, self.name_to]),
            "display": "全部",
        }

    def bounds(self) -> tuple[object, object]:
        raise NotImplementedError

    def queryset(self, request, queryset):
        try:
            low, high = self.bounds()
        except ValueError as exc:
            self.error = str(exc)
            return queryset
        if low is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": low})
        if high is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": high})
        return queryset


class DateRangeFilter(RangeFilter):
    """A day range, both days included, in the site's time zone (Beijing)."""

    def bounds(self):
        days = []
        for name in (self.name_from, self.name_to):
            value = self.values[name].strip()
            try:
                days.append(date.fromisoformat(value) if value else None)
            except ValueError:
                raise ValueError(f"日期「{value}」无效，请按 2026-12-07 的格式填写") from None
        low, high = days
        zone = timezone.get_current_timezone()
        start = datetime.combine(low, time.min, tzinfo=zone) if low else None
        end = datetime.combine(high + timedelta(days=1), time.min, tzinfo=zone) if high else None
        return start, end


class AmountRangeFilter(RangeFilter):
    """An amount range in yuan (the field holds fen), both ends included."""

    input_type = "text"
    placeholder = ("最低（元）", "最高（元）")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = str(self.title).replace("（分）", "") + "（元）"

    def bounds(self):
        fen = []
        for name in (self.name_from, self.name_to):
            value = self.values[name].strip()
            parsed = parse_yuan(value) if value else None
            if value and parsed is None:
                raise ValueError(f"金额「{value}」无效，请填写元，如 100 或 99.50")
            fen.append(parsed)
        low, high = fen
        return low, (high + 1 if high is not None else None)

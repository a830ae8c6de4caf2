"""Operators' pages for the wallet: API clients (a key shown once, rolled, revoked), charges
and their reversals (read-only; an operator's reversal behind its own permission), the API's
call log, and today's spends on the start page."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from audit import log as audit
from audit.export import ExportMixin
from common.admin import ReadOnlyAdmin, ReadOnlyInline, changelist_url, link, start_page_panel, when
from common.admin_filters import DateRangeFilter
from common.money import format_fen, parse_yuan, yuan
from common.numbering import stamped_number
from wallet.models import ApiClient, ApiRequest, Charge, ChargeError, Reversal
from wxproto.beijing import BEIJING

REVERSAL_NO = r"^RQ[0-9]{26}$"


def _new_request_no() -> str:
    """ "RQ" + Beijing timestamp + random digits, made when the reversal form is shown."""
    return stamped_number("RQ", 12)


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label="权限",
        choices=list(ApiClient.SCOPES.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "请至少选择一项权限"},
    )

    class Meta:
        model = ApiClient
        fields = ("name", "scopes", "store")


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "scope_list", "store", "key_prefix_display", "state", "last_used", "created")
    readonly_fields = ("key_prefix_display", "state", "created_at", "rolled_at", "revoked_at", "last_used_at")
    change_form_template = "admin/wallet/apiclient/change_form.html"

    @admin.display(description="权限")
    def scope_list(self, obj: ApiClient) -> str:
        return "、".join(obj.scopes)

    @admin.display(description="密钥")
    def key_prefix_display(self, obj: ApiClient) -> str:
        return f"{obj.key_prefix}…" if obj.key_prefix else "-"

    @admin.display(description="状态")
    def state(self, obj: ApiClient) -> str:
        return "使用中" if obj.is_active else f"已停用（{when(obj.revoked_at)}）"

    @admin.display(description="最近调用", ordering="last_used_at")
    def last_used(self, obj: ApiClient) -> str:
        return when(obj.last_used_at)

    @admin.display(description="创建时间", ordering="created_at")
    def created(self, obj: ApiClient) -> str:
        return when(obj.created_at)

    def has_delete_permission(self, request, obj=None):
        return False  # its charges point at it: revoke instead

    def save_model(self, request, obj: ApiClient, form, change):
        if not change:
            request._new_api_secret = obj._new_key()  # shown once, by response_add
        super().save_model(request, obj, form, change)
        changed: dict[str, object] = {n: audit.change(form.initial.get(n), form.cleaned_data.get(n)) for n in form.changed_data}
        audit.record("api_client.change", request=request, obj=obj, changes=changed if change else {"新建": obj.name})

    def response_add(self, request, obj, post_url_continue=None):
        return self._show_secret(request, obj, request._new_api_secret, "已创建 API 客户端")

    def _show_secret(self, request, obj: ApiClient, secret: str, title: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "original": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/wallet/apiclient/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/roll/", view(require_POST(self.roll_view)), name="wallet_apiclient_roll"),
            path("<int:pk>/revoke/", view(require_POST(self.revoke_view)), name="wallet_apiclient_revoke"),
            *super().get_urls(),
        ]

    def _editable(self, request, pk: int) -> ApiClient:
        client = get_object_or_404(ApiClient, pk=pk)
        if not self.has_change_permission(request, client):
            raise PermissionDenied
        return client

    def roll_view(self, request, pk: int):
        client = self._editable(request, pk)
        if not client.is_active:
            self.message_user(request, "已停用的客户端不能更换密钥", messages.ERROR)
            return redirect("admin:wallet_apiclient_change", client.pk)
        secret = client.roll()
        audit.record("api_client.change", request=request, obj=client, changes={"密钥": "已更换"})
        return self._show_secret(request, client, secret, "已更换密钥")

    def revoke_view(self, request, pk: int):
        client = self._editable(request, pk)
        if client.revoke():
            audit.record("api_client.change", request=request, obj=client, changes={"状态": audit.change("启用", "已停用")})
            self.message_user(request, f"已停用 {client.name}：它的密钥从现在起不能再调用", messages.SUCCESS)
        return redirect("admin:wallet_apiclient_change", client.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        client = self.get_object(request, object_id)
        if client is not None and client.is_active and self.has_change_permission(request, client):
            context["roll_url"] = reverse("admin:wallet_apiclient_roll", args=[client.pk])
            context["revoke_url"] = reverse("admin:wallet_apiclient_revoke", args=[client.pk])
        return super().change_view(request, object_id, form_url, context)


class ReversalInline(ReadOnlyInline):
    model = Reversal
    fields = ("number", "amount_display", "reason", "client", "operator", "created_at")
    readonly_fields = fields

    @admin.display(description="金额")
    def amount_display(self, obj: Reversal) -> str:
        return yuan(obj.amount)


class ReverseForm(forms.Form):
    required_css_class = "required"
    request_no = forms.RegexField(
        REVERSAL_NO,
        widget=forms.HiddenInput,
        error_messages={"invalid": "页面已过期，请重新提交", "required": "页面已过期，请重新提交"},
    )
    amount = forms.CharField(label="撤销金额（元）", max_length=20, help_text="退回给会员的金额，不超过可撤销金额")
    reason = forms.CharField(label="撤销原因", max_length=200, widget=forms.TextInput(attrs={"class": "vTextField"}))

    def clean_amount(self) -> int:
        fen = parse_yuan(self.cleaned_data["amount"])
        if fen is None or fen <= 0:
            raise forms.ValidationError("请输入正确的金额（元，最多两位小数）")
        return fen


@admin.register(Charge)
class ChargeAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = ("number", "member", "amount_display", "reversed_display", "status_display", "store", "client", "created")
    list_filter = ("store", "client", ("created_at", DateRangeFilter))
    exact_search_fields = ("number", "user__username", "store")
    change_list_template = "admin/export_change_list.html"
    export_name = "charges"
    export_columns = [
        ("消费单号", lambda c: c.number),
        ("会员", lambda c: c.user.username),
        ("金额（元）", lambda c: format_fen(c.amount)),
        ("已撤销（元）", lambda c: format_fen(c.reversed_amount)),
        ("门店", lambda c: c.store),
        ("说明", lambda c: c.description),
        ("API 客户端", lambda c: c.client.name if c.client else ""),
        ("时间", lambda c: c.created_at),
    ]
    list_select_related = ("user", "client")
    inlines = [ReversalInline]
    fields = (
        "number",
        "member",
        "amount_display",
        "reversed_display",
        "status_display",
        "description",
        "store",
        "client",
        "member_code_display",
        "created_at",
    )
    readonly_fields = fields
    change_form_template = "admin/wallet/charge/change_form.html"

    @admin.display(description="会员")
    def member(self, obj: Charge) -> str:
        return link(obj.user, obj.user.username)

    @admin.display(description="金额", ordering="amount")
    def amount_display(self, obj: Charge) -> str:
        return yuan(obj.amount)

    @admin.display(description="已撤销")
    def reversed_display(self, obj: Charge) -> str:
        return yuan(obj.reversed_amount) if obj.reversed_amount else "-"

    @admin.display(description="状态")
    def status_display(self, obj: Charge) -> str:
        return obj.get_status_display()

    @admin.display(description="会员码")
    def member_code_display(self, obj: Charge) -> str:
        return "凭会员码" if obj.member_code_id else "凭会员编号"

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: Charge) -> str:
        return when(obj.created_at)

    def get_urls(self):
        reverse_view = path("<int:pk>/reverse/", self.admin_site.admin_view(self.reverse_view), name="wallet_charge_reverse")
        return [reverse_view, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        charge = self.get_object(request, object_id)
        if charge is not None and charge.reversible_amount and request.user.has_perm("wallet.reverse_charge"):
            context["reverse_url"] = reverse("admin:wallet_charge_reverse", args=[charge.pk])
        return super().change_view(request, object_id, form_url, context)

    def reverse_view(self, request, pk: int):
        """An operator gives back part or all of a charge, with a reason (a ledger row of its own)."""
        if not request.user.has_perm("wallet.reverse_charge"):
            raise PermissionDenied
        charge = get_object_or_404(Charge.objects.select_related("user"), pk=pk)
        form = ReverseForm(
            request.POST if request.method == "POST" else None,
            initial={"request_no": _new_request_no(), "amount": format_fen(charge.reversible_amount)},
        )
        if form.is_valid():
            try:
                reversal = charge.reverse(
                    form.cleaned_data["amount"],
                    form.cleaned_data["reason"],
                    operator=request.user,
                    request_no=form.cleaned_data["request_no"],
                )
            except ChargeError as exc:
                form.add_error(None, exc.message)
            else:
                audit.record(
                    "charge.reverse",
                    request=request,
                    obj=charge,
                    changes={"撤销单号": reversal.number, "撤销金额": f"¥{reversal.amount_yuan}"},
                    reason=form.cleaned_data["reason"],
                )
                self.message_user(
                    request,
                    f"已撤销 {charge.number} 的 ¥{reversal.amount_yuan}，"
                    f"会员 {charge.user.username} 的余额为 ¥{format_fen(reversal.entry.balance_after)}",
                    messages.SUCCESS,
                )
                return redirect("admin:wallet_charge_change", charge.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"撤销消费：{charge.number}",
            "action": "撤销消费",
            "original": charge,
            "form": form,
            "reversible": yuan(charge.reversible_amount),
            "charged": yuan(charge.amount),
        }
        return TemplateResponse(request, "admin/wallet/charge/reverse.html", context)


@admin.register(Reversal)
class ReversalAdmin(ReadOnlyAdmin):
    list_display = ("number", "charge_link", "amount_display", "reason", "client", "operator", "created")
    exact_search_fields = ("number", "charge__number")
    list_select_related = ("charge", "client", "operator")

    @admin.display(description="消费")
    def charge_link(self, obj: Reversal) -> str:
        return link(obj.charge, obj.charge.number)

    @admin.display(description="金额", ordering="amount")
    def amount_display(self, obj: Reversal) -> str:
        return yuan(obj.amount)

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: Reversal) -> str:
        return when(obj.created_at)


@admin.register(ApiRequest)
class ApiRequestAdmin(ReadOnlyAdmin):
    list_display = ("created", "client", "method", "path", "status_code", "error_code", "idempotency_key", "replayed")
    list_filter = ("status_code", "client")
    exact_search_fields = ("idempotency_key", "path")
    list_select_related = ("client",)

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: ApiRequest) -> str:
        return when(obj.created_at)


# -- the start page ----------------------------------------------------------------------------


@start_page_panel
def _spends_today(request) -> dict:
    """Today's spends and reversals (Beijing day), beside the recharges."""
    if not request.user.has_perm("wallet.view_charge"):
        return {}
    return {"spends": spends_today()}


def spends_today(now: datetime | None = None) -> dict:
    today = timezone.localdate(now or timezone.now(), BEIJING)
    since = datetime.combine(today, time.min, tzinfo=BEIJING)
    until = since + timedelta(days=1)
    charges = Charge.objects.filter(created_at__gte=since, created_at__lt=until).aggregate(n=Count("pk"), total=Sum("amount"))
    reversals = Reversal.objects.filter(created_at__gte=since, created_at__lt=until).aggregate(n=Count("pk"), total=Sum("amount"))
    return {
        "today": today,
        "count": charges["n"],
        "yuan": format_fen(charges["total"] or 0),
        "reversal_count": reversals["n"],
        "reversal_yuan": format_fen(reversals["total"] or 0),
        "url": changelist_url(Charge),
    }

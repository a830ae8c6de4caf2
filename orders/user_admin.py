"""Operators' page for users: balance and WeChat identities read-only, the latest ledger rows,
and a balance adjustment page (money only moves through the ledger: an adjustment is a
ledger row with its reason and operator). The page is about a user's money, so the books
(orders) register it; accounts, below them, knows nothing of the ledger.
orders/admin.py imports this module, which registers it."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts import two_factor
from accounts.admin import PermissionPicker
from accounts.models import User, WeChatUnbinding
from audit import log as audit
from common.admin import ReadOnlyAdmin, changelist_url
from common.money import format_fen, parse_yuan, yuan
from orders.models import LedgerEntry, RechargeOrder

# The user page shows this many ledger rows; the rest are one link away.
LEDGER_ROWS = 20
BAD_AMOUNT = "请输入正确的金额（元，最多两位小数；扣减请用负数）"


REQUEST_NO = r"^AJ[0-9]{26}$"


class AdjustForm(forms.Form):
    required_css_class = "required"

    # Made when the page is shown: submitting the same form twice adjusts once.
    request_no = forms.RegexField(
        REQUEST_NO,
        widget=forms.HiddenInput,
        error_messages={"invalid": "页面已过期，请重新提交", "required": "页面已过期，请重新提交"},
    )

    amount = forms.CharField(
        label="调整金额（元）",
        max_length=20,
        error_messages={"required": BAD_AMOUNT},
        help_text="正数增加余额，负数扣减余额，例如 5.00 或 -5.00；最多两位小数",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    reason = forms.CharField(
        label="调整原因",
        max_length=200,
        error_messages={"required": "请填写调整原因"},
        help_text="会记在余额流水上",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )

    def clean_amount(self) -> int:
        fen = parse_yuan(self.cleaned_data["amount"], signed=True)
        if fen is None:
            raise forms.ValidationError(BAD_AMOUNT)
        return fen


class UnbindForm(forms.Form):
    required_css_class = "required"

    app = forms.ChoiceField(label="解绑哪个微信", widget=forms.RadioSelect, error_messages={"required": "请选择要解绑的微信"})
    reason = forms.CharField(
        label="解绑原因",
        max_length=200,
        error_messages={"required": "请填写解绑原因"},
        help_text="会记入微信解绑记录；用户下次登录时重新绑定",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )

    def __init__(self, user: User, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["app"]).choices = [
            (app, f"{label}（{getattr(user, app)}）") for app, label in WeChatUnbinding.App.choices if getattr(user, app)
        ]


@admin.register(WeChatUnbinding)
class WeChatUnbindingAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "app", "openid", "reason", "operator")
    list_filter = ("app",)
    exact_search_fields = ("user__username", "openid")
    list_select_related = ("user", "operator")


@admin.register(User)
class UserAdmin(PermissionPicker, DjangoUserAdmin):
    list_display = ("username", "balance_display", "openid", "miniprogram_openid", "is_staff", "date_joined")
    search_fields = ("username", "openid", "miniprogram_openid", "unionid")
    readonly_fields = ("balance_display", "openid", "miniprogram_openid", "unionid", "last_login", "date_joined")
    # The balance right under the name: it is what operators come to this page for.
    fieldsets = (
        DjangoUserAdmin.fieldsets[0],  # type: ignore[index]  # Django's UserAdmin has them
        ("微信与余额", {"fields": ("balance_display", "openid", "miniprogram_openid", "unionid")}),
        *DjangoUserAdmin.fieldsets[1:],  # type: ignore[index]
    )

    @admin.display(description="余额", ordering="balance")
    def balance_display(self, obj: User) -> str:
        return yuan(obj.balance)

    # Who sees Django's account form: superusers whole; 管理员 (who may change roles) without the
    # superuser flag and single permissions, and only for accounts that are not superusers.
    # Everyone else (客服, 财务) sees the customer's page: no form, nothing to save.
    def may_edit_accounts(self, request, user: User | None = None) -> bool:
        if request.user.is_superuser:
            return True
        return request.user.has_perm("auth.change_group") and not (user is not None and user.is_superuser)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        hidden = {"is_superuser", "user_permissions"}
        return [(name, {**options, "fields": [f for f in options["fields"] if f not in hidden]}) for name, options in fieldsets]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.may_edit_accounts(request):
            raise PermissionDenied
        return super().add_view(request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The latest ledger rows under the form (an inline cannot be limited to a few rows);
        for those who may not edit accounts, the customer's page instead."""
        context = dict(extra_context or {})
        user = self.get_object(request, object_id)
        if user is not None and not self.may_edit_accounts(request, user):
            if request.method != "GET" or not self.has_view_permission(request, user):
                raise PermissionDenied
            return self.customer_view(request, user)
        if user is not None:
            context.update(self.member_context(request, user))
        return super().change_view(request, object_id, form_url, context)

    def member_context(self, request, user: User) -> dict:
        """What both pages of a member show: the latest ledger rows (an inline cannot be
        limited to a few rows) and the actions this operator may take."""
        may = request.user.has_perm
        ledger = user.ledger_entries.select_related("order", "refund", "operator").order_by("-created_at", "-pk")
        context: dict = {
            "ledger_rows": ledger[:LEDGER_ROWS] if may("orders.view_ledgerentry") or request.user.is_superuser else None,
            "ledger_count": user.ledger_entries.count(),
            "ledger_url": changelist_url(LedgerEntry, user=user.pk),
        }
        if self.has_change_permission(request, user):
            context["adjust_url"] = reverse("admin:accounts_user_adjust", args=[user.pk])
        if may("accounts.unbind_wechat") and (user.openid or user.miniprogram_openid):
            context["unbind_url"] = reverse("admin:accounts_user_unbind", args=[user.pk])
        if request.user.is_superuser and two_factor.has_authenticator(user):
            context["otp_reset_url"] = reverse("admin:otp_reset", args=[user.pk])
        return context

    def customer_view(self, request, user: User) -> TemplateResponse:
        """客户: what support and finance need of a member on one page: the balance and bindings,
        the actions they may take, the latest orders, ledger rows and refund requests."""
        may = request.user.has_perm
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"客户：{user.username}",
            "original": user,
            "customer": user,
            "balance": yuan(user.balance),
            "orders": user.recharge_orders.order_by("-created_at", "-pk")[:10] if may("orders.view_rechargeorder") else None,
            "orders_url": changelist_url(RechargeOrder, user=user.pk),
            "refund_requests": user.refund_requests.order_by("-created_at")[:5] if may("payments.view_refundrequest") else None,
            **self.member_context(request, user),
        }
        return TemplateResponse(request, "admin/accounts/user/customer.html", context)

    def get_urls(self):
        adjust = path("<int:pk>/adjust/", self.admin_site.admin_view(self.adjust_view), name="accounts_user_adjust")
        unbind = path("<int:pk>/unbind/", self.admin_site.admin_view(self.unbind_view), name="accounts_user_unbind")
        return [adjust, unbind, *super().get_urls()]

    def unbind_view(self, request, pk: int):
        """Take a user's 公众号 or mini-program WeChat off the account, with a reason, on the record
        (微信解绑记录): they bind again at their next sign-in."""
        if not request.user.has_perm("accounts.unbind_wechat"):
            raise PermissionDenied
        user = get_object_or_404(User, pk=pk)
        form = UnbindForm(user, request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                record = user.unbind_wechat(form.cleaned_data["app"], request.user, form.cleaned_data["reason"])
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                audit.record(
                    "user.unbind",
                    request=request,
                    obj=user,
                    changes={"解绑": f"{record.get_app_display()} {record.openid}"},
                    reason=form.cleaned_data["reason"],
                )
                self.message_user(
                    request, f"已解绑 {user.username} 的{record.get_app_display()}微信（{record.openid}）", messages.SUCCESS
                )
                return redirect("admin:accounts_user_change", user.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"解绑微信：{user.username}",
            "action": "解绑微信",
            "original": user,
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/user/unbind.html", context)

    def adjust_view(self, request, pk: int):
        """Adjust a balance by signed yuan with a reason; LedgerEntry.adjust refuses zero,
        no reason and going below zero."""
        user = get_object_or_404(User, pk=pk)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        form = AdjustForm(
            request.POST if request.method == "POST" else None, initial={"request_no": LedgerEntry.new_request_no()}
        )
        if form.is_valid():
            try:
                entry = LedgerEntry.adjust(
                    user.pk,
                    form.cleaned_data["amount"],
                    form.cleaned_data["reason"],
                    request.user,
                    request_no=form.cleaned_data["request_no"],
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                audit.record(
                    "balance.adjust",
                    request=request,
                    obj=user,
                    changes={
                        "调整金额": f"{'+' if entry.amount > 0 else ''}{format_fen(entry.amount)}",
                        "余额": audit.change(yuan(entry.balance_after - entry.amount), yuan(entry.balance_after)),
                    },
                    reason=form.cleaned_data["reason"],
                )
                sign = "+" if entry.amount > 0 else ""
                self.message_user(
                    request,
                    f"已调整 {user.username} 的余额 {sign}{format_fen(entry.amount)} 元，调整后余额 ¥{entry.balance_after_yuan}",
                    messages.SUCCESS,
                )
                return redirect("admin:accounts_user_change", user.pk)
        if form.is_bound and "request_no" in form.errors:
            # Show the page again with a fresh number, so that the next submission can pass.
            data = request.POST.copy()
            data["request_no"] = LedgerEntry.new_request_no()
            errors = form.errors["request_no"]
            form = AdjustForm(data)
            form.is_valid()
            form.add_error(None, errors)
        user.refresh_from_db(fields=["balance"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"调整余额：{user.username}",
            "action": "调整余额",
            "original": user,
            "form": form,
            "balance": yuan(user.balance),
        }
        return TemplateResponse(request, "admin/accounts/user/adjust.html", context)

"""Operators' pages for WeChat messages: the templates (which WeChat template each kind of
message uses and what fills its keywords), every message and shipping record with its
attempts and 重新发送, and the members' subscribe grants."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from audit import log as audit
from common.admin import ReadOnlyAdmin, ReadOnlyInline, link, when
from messaging.models import FIELDS, Kind, Message, MessageAttempt, MessageTemplate, SubscribeGrant, fields_for


def keywords_text(keywords: dict) -> str:
    return "\n".join(f"{name}: {text}" for name, text in keywords.items())


def fields_help() -> str:
    rows = format_html_join(
        "",
        "<li><b>{}</b>：{}</li>",
        ((Kind(kind).label, "、".join(f"{{{name}}} {label}" for name, label in fields_for(kind).items())) for kind in FIELDS),
    )
    return format_html(
        "每行一个关键词：<code>关键词名: 内容</code>，如 <code>amount2: {{amount}}</code>。关键词名见微信后台模板详情"
        "（如「充值金额 {{{{amount2.DATA}}}}」即 amount2）。内容中可用：<ul>{}</ul>",
        rows,
    )


class TemplateForm(forms.ModelForm):
    keywords = forms.CharField(label="关键词与内容", widget=forms.Textarea(attrs={"rows": 6, "cols": 60}))

    class Meta:
        model = MessageTemplate
        fields = ("channel", "kind", "template_id", "title", "keywords", "page", "is_active")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["keywords"].help_text = fields_help()
        if self.instance.pk:
            self.initial["keywords"] = keywords_text(self.instance.keywords)

    def clean_keywords(self) -> dict:
        keywords = {}
        for number, line in enumerate(self.cleaned_data["keywords"].splitlines(), 1):
            if not line.strip():
                continue
            name, colon, text = line.partition(":")
            if not colon:
                name, colon, text = line.partition("：")
            if not colon:
                raise ValidationError(f"第 {number} 行应为「关键词名: 内容」")
            if name.strip() in keywords:
                raise ValidationError(f"关键词 {name.strip()} 出现了两次")
            keywords[name.strip()] = text.strip()
        return keywords


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ("__str__", "template_id", "title", "keyword_list", "is_active", "updated")
    list_filter = ("channel", "kind", "is_active")

    @admin.display(description="关键词")
    def keyword_list(self, obj: MessageTemplate) -> str:
        return "；".join(f"{name}={text}" for name, text in obj.keywords.items())

    @admin.display(description="更新时间", ordering="updated_at")
    def updated(self, obj: MessageTemplate) -> str:
        return when(obj.updated_at)


class AttemptInline(ReadOnlyInline):
    model = MessageAttempt
    fields = ("attempted_at", "errcode", "error", "duration_ms")
    readonly_fields = fields
    show_change_link = False


class FailingFilter(admin.SimpleListFilter):
    """失败与拒收 together: what an operator looks at."""

    title = "需要关注"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("1", "失败或重试中")]

    def queryset(self, request, queryset):
        if self.value() == "1":
            return queryset.filter(status=Message.Status.FAILED) | queryset.filter(status=Message.Status.PENDING, attempts__gt=0)
        return queryset


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("created", "channel", "kind", "user_link", "subject", "status", "attempts", "error", "next_attempt")
    list_filter = ("channel", "status", FailingFilter, "kind")
    exact_search_fields = ("subject", "openid", "user__username")
    list_select_related = ("user",)
    fields = (
        "channel",
        "kind",
        "user_link",
        "subject",
        "order_link",
        "openid",
        "template_id",
        "body",
        "status",
        "attempts",
        "last_errcode",
        "last_error",
        "last_attempt_at",
        "next_attempt_at",
        "sent_at",
        "msgid",
        "created_at",
    )
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["resend"]
    change_form_template = "admin/outbox/delivery/change_form.html"

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: Message) -> str:
        return when(obj.created_at)

    @admin.display(description="用户")
    def user_link(self, obj: Message) -> str:
        return link(obj.user, obj.user.username)

    @admin.display(description="充值订单")
    def order_link(self, obj: Message) -> str:
        return link(obj.order)

    @admin.display(description="最近错误")
    def error(self, obj: Message) -> str:
        if not obj.last_error:
            return ""
        return f"{obj.last_errcode} {obj.last_error}" if obj.last_errcode not in (None, 0) else obj.last_error

    @admin.display(description="下次尝试", ordering="next_attempt_at")
    def next_attempt(self, obj: Message) -> str:
        return when(obj.next_attempt_at) if obj.status == Message.Status.PENDING else "-"

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("messaging.resend_message")

    @admin.action(description="重新发送所选消息（失败或拒收的）", permissions=["resend"])
    def resend(self, request, queryset):
        done = 0
        for message in queryset:
            if message.resend():
                done += 1
                audit.record("message.resend", request=request, obj=message)
        self.message_user(request, f"已安排重新发送 {done} 条消息", messages.SUCCESS)

    def get_urls(self):
        resend = path(
            "<int:pk>/resend/", self.admin_site.admin_view(require_POST(self.resend_view)), name="messaging_message_resend"
        )
        return [resend, *super().get_urls()]

    def resend_view(self, request, pk: int):
        if not self.has_resend_permission(request):
            raise PermissionDenied
        message = get_object_or_404(Message, pk=pk)
        if message.resend():
            audit.record("message.resend", request=request, obj=message)
            self.message_user(request, "已安排重新发送，推送程序会在几秒内发出", messages.SUCCESS)
        else:
            self.message_user(request, "只有失败或被拒收的消息可以重新发送", messages.WARNING)
        return redirect("admin:messaging_message_change", message.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        if self.has_resend_permission(request):
            context["resend_url"] = reverse("admin:messaging_message_resend", args=[object_id])
        return super().change_view(request, object_id, form_url, context)


@admin.register(SubscribeGrant)
class SubscribeGrantAdmin(ReadOnlyAdmin):
    list_display = ("created", "user", "template_id", "result", "used")
    list_filter = ("result",)
    exact_search_fields = ("user__username", "template_id")
    list_select_related = ("user",)
    fields = ("user", "template_id", "result", "created_at", "used_at")
    readonly_fields = fields

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: SubscribeGrant) -> str:
        return when(obj.created_at)

    @admin.display(description="使用时间", ordering="used_at")
    def used(self, obj: SubscribeGrant) -> str:
        return when(obj.used_at)

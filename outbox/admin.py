"""Operators' pages for webhooks: endpoints (a signing secret shown once), the events and
their deliveries with every attempt, and 重新发送 for a delivery that failed."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from audit import log as audit
from common.admin import ReadOnlyAdmin, ReadOnlyInline, link, when
from outbox.models import EVENT_TYPES, Attempt, Delivery, Event, WebhookEndpoint, url_problem


class EndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        label="订阅事件",
        choices=list(EVENT_TYPES.items()),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "请至少订阅一种事件"},
    )

    url = forms.URLField(label="地址", max_length=500, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "description", "is_active")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problem = url_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("url", "event_list", "description", "is_active", "created")
    change_form_template = "admin/outbox/webhookendpoint/change_form.html"

    @admin.display(description="订阅事件")
    def event_list(self, obj: WebhookEndpoint) -> str:
        return "、".join(obj.events)

    @admin.display(description="创建时间", ordering="created_at")
    def created(self, obj: WebhookEndpoint) -> str:
        return when(obj.created_at)

    def save_model(self, request, obj: WebhookEndpoint, form, change):
        if not change:
            obj.secret = WebhookEndpoint.new_secret()
        super().save_model(request, obj, form, change)
        changed: dict[str, object] = {n: audit.change(form.initial.get(n), form.cleaned_data.get(n)) for n in form.changed_data}
        audit.record("webhook.change", request=request, obj=obj, changes=changed if change else {"新建": obj.url})

    def delete_model(self, request, obj: WebhookEndpoint):
        audit.record("webhook.change", request=request, obj=obj, changes={"删除": obj.url})
        super().delete_model(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        return self._show_secret(request, obj, "已添加 Webhook 地址")

    def _show_secret(self, request, obj: WebhookEndpoint, title: str) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "original": obj,
            "secret": obj.secret,
        }
        response = TemplateResponse(request, "admin/outbox/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_urls(self):
        roll = path(
            "<int:pk>/roll/", self.admin_site.admin_view(require_POST(self.roll_view)), name="outbox_webhookendpoint_roll"
        )
        return [roll, *super().get_urls()]

    def roll_view(self, request, pk: int):
        endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        endpoint.roll_secret()
        audit.record("webhook.change", request=request, obj=endpoint, changes={"签名密钥": "已更换"})
        return self._show_secret(request, endpoint, "已更换签名密钥")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        endpoint = self.get_object(request, object_id)
        if endpoint is not None and self.has_change_permission(request, endpoint):
            context["roll_url"] = reverse("admin:outbox_webhookendpoint_roll", args=[endpoint.pk])
        return super().change_view(request, object_id, form_url, context)


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = ("attempted_at", "status_code", "duration_ms", "error", "answer")
    readonly_fields = fields
    show_change_link = False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("event_link", "event_type", "endpoint", "status", "attempts", "last_status_code", "next_attempt", "created")
    list_filter = ("status", "endpoint", "event__type")
    exact_search_fields = ("event__event_id",)
    list_select_related = ("event", "endpoint")
    fields = (
        "event_link",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
    )
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["resend"]
    change_form_template = "admin/outbox/delivery/change_form.html"

    @admin.display(description="事件")
    def event_link(self, obj: Delivery) -> str:
        return link(obj.event, obj.event.event_id)

    @admin.display(description="类型")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.get_type_display()

    @admin.display(description="下次尝试", ordering="next_attempt_at")
    def next_attempt(self, obj: Delivery) -> str:
        return when(obj.next_attempt_at) if obj.status == Delivery.Status.PENDING else "-"

    @admin.display(description="创建时间", ordering="created_at")
    def created(self, obj: Delivery) -> str:
        return when(obj.created_at)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("outbox.resend_delivery")

    @admin.action(description="重新发送所选推送", permissions=["resend"])
    def resend(self, request, queryset):
        for delivery in queryset:
            delivery.resend()
            audit.record("delivery.resend", request=request, obj=delivery)
        self.message_user(request, f"已安排重新发送 {queryset.count()} 条推送", messages.SUCCESS)

    def get_urls(self):
        resend = path(
            "<int:pk>/resend/", self.admin_site.admin_view(require_POST(self.resend_view)), name="outbox_delivery_resend"
        )
        return [resend, *super().get_urls()]

    def resend_view(self, request, pk: int):
        if not self.has_resend_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery, pk=pk)
        delivery.resend()
        audit.record("delivery.resend", request=request, obj=delivery)
        self.message_user(request, "已安排重新发送，推送程序会在几秒内发出", messages.SUCCESS)
        return redirect("admin:outbox_delivery_change", delivery.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        if self.has_resend_permission(request):
            context["resend_url"] = reverse("admin:outbox_delivery_resend", args=[object_id])
        return super().change_view(request, object_id, form_url, context)


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ("endpoint", "status", "attempts", "last_status_code", "delivered_at")
    readonly_fields = fields


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "type", "created")
    list_filter = ("type",)
    exact_search_fields = ("event_id",)
    fields = ("event_id", "type", "data", "created_at", "dispatched_at")
    readonly_fields = fields
    inlines = [DeliveryInline]

    @admin.display(description="时间", ordering="created_at")
    def created(self, obj: Event) -> str:
        return when(obj.created_at)

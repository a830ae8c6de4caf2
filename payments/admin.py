"""Operators' pages for the notification log and incidents: read-only records with the two
things an operator does with them, process a notify again and mark an incident handled.

The actions need the model's change permission (the records are never edited by hand,
but these actions do change them).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from audit import log as audit
from common.admin import ReadOnlyAdmin, change_url, changelist_url, confirm_with_reason, link, link_to, start_page_panel, when
from orders.models import RechargeOrder, Refund, RefundRefused
from payments import (
    notifies,
    order_admin,  # noqa: F401 (registers the orders' and refunds' admin)
    services,
)
from payments.dashboard import dashboard
from payments.models import Incident, Notification
from wxproto.amounts import format_fen
from wxproto.errors import WeChatError


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "api", "out_trade_no", "out_refund_no", "signature_valid", "outcome", "incident_link")
    list_filter = ("kind", "api", "outcome", "signature_valid", ("received_at", admin.DateFieldListFilter))
    exact_search_fields = ("out_trade_no", "out_refund_no")
    list_select_related = ("incident",)
    fields = (
        "received_at",
        "kind",
        "api",
        "remote_addr",
        "signature_valid",
        "outcome",
        "processed_at",
        "order_link",
        "refund_link",
        "incident_link",
        "detail",
        "headers_display",
        "body_display",
        "traceback_display",
    )
    readonly_fields = fields
    actions = ["process_again"]

    def has_process_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_notification")

    @admin.display(description="异常")
    def incident_link(self, obj: Notification) -> str:
        return link(obj.incident, f"#{obj.incident_id} {obj.incident.get_kind_display()}" if obj.incident else None)

    @admin.display(description="订单")
    def order_link(self, obj: Notification) -> str:
        if not obj.out_trade_no:
            return "-"
        order = RechargeOrder.objects.filter(out_trade_no=obj.out_trade_no).first()
        return link(order) if order else f"{obj.out_trade_no}（本站没有这个订单）"

    @admin.display(description="退款")
    def refund_link(self, obj: Notification) -> str:
        if not obj.out_refund_no:
            return "-"
        refund = Refund.objects.filter(out_refund_no=obj.out_refund_no).first()
        return link(refund) if refund else f"{obj.out_refund_no}（本站没有这笔退款）"

    @admin.display(description="原文")
    def body_display(self, obj: Notification) -> str:
        return format_html('<pre class="notify-body">{}</pre>', obj.body_text)

    @admin.display(description="签名头")
    def headers_display(self, obj: Notification) -> str:
        """v3: the Wechatpay-* headers the signature was checked with, one per line."""
        if not obj.headers:
            return "-"
        return format_html(
            '<pre class="notify-body">{}</pre>', "\n".join(f"{name}: {value}" for name, value in obj.headers.items())
        )

    @admin.display(description="错误堆栈")
    def traceback_display(self, obj: Notification) -> str:
        return format_html('<pre class="notify-body">{}</pre>', obj.traceback) if obj.traceback else "-"

    @admin.action(description="重新处理", permissions=["process"])
    def process_again(self, request, queryset):
        """Process a notify that failed (or was never processed) again, the way WeChat's retry would."""
        retry = (Notification.Outcome.ERROR, Notification.Outcome.RECEIVED)
        done = failed = skipped = 0
        for notification in queryset:
            if notification.outcome not in retry:
                skipped += 1
                continue
            before = notification.get_outcome_display()
            if notifies.process(notification):
                done += 1
            else:
                failed += 1
            notification.refresh_from_db(fields=["outcome"])
            audit.record(
                "notify.reprocess",
                request=request,
                obj=notification,
                changes={"处理结果": audit.change(before, notification.get_outcome_display())},
            )
        if done or failed:
            level = messages.WARNING if failed else messages.SUCCESS
            self.message_user(request, f"重新处理 {done + failed} 条通知：成功 {done} 条，失败 {failed} 条", level)
        if skipped:
            self.message_user(request, f"跳过 {skipped} 条：只有“处理失败”或“已接收”的通知可以重新处理", messages.WARNING)


class IncidentStateFilter(admin.SimpleListFilter):
    """Open incidents unless asked otherwise: they are what the list is for."""

    title = "状态"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "未处理"), ("resolved", "已处理"), ("all", "全部")]

    def choices(self, changelist):
        current = self.value() or "open"
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "display": label,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
        if value == "open":
            return queryset.filter(resolved_at__isnull=True)
        if value == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    # At a laptop's width (1366 px) beside the filters: the order number once (linked to the order
    # when there is one) with the refund's under it, and times that may break at the space, leave
    # 说明 room to be read.
    list_display = (
        "kind",
        "trade_display",
        "short_message",
        "occurrences",
        "created_display",
        "last_seen_display",
        "state",
    )
    list_filter = (IncidentStateFilter, "kind")
    exact_search_fields = ("out_trade_no",)
    list_select_related = ("order", "refund", "resolved_by")
    fields = (
        "kind",
        "state",
        "out_trade_no",
        "order_link",
        "refund_link",
        "message",
        "occurrences",
        "created_at",
        "last_seen_at",
        "resolved_at",
        "resolved_by",
        "resolution",
        "notifications_list",
    )
    readonly_fields = fields
    actions = ["resolve_selected"]
    change_form_template = "admin/payments/incident/change_form.html"

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_incident")

    # -- 处理: the fixes each kind offers, then resolved with the operator's note -----------------

    def fixes(self, incident: Incident, user) -> list[tuple[str, str]]:
        """What may settle this incident, by what it is about: WeChat asked again about its refund
        or its order (the same services as the refund and order pages); for an amount WeChat
        took that the order did not match, that amount credited or refunded (with the refund
        permission); or acknowledged."""
        offered = []
        order = incident.order
        if incident.refund is not None and incident.refund.status in Refund.OPEN:
            offered.append(("sync_refund", "向微信查询这笔退款，按微信的结果完成它"))
        if incident.kind == Incident.Kind.AMOUNT_MISMATCH and order is not None:
            if not order.is_credited and user.has_perm("orders.refund_rechargeorder"):
                offered.append(("credit_taken", "按微信实收金额入账：订单金额改为微信实收，计入用户余额"))
                offered.append(("refund_taken", "全额退回微信实收：按实收金额入账后立即原路退款给用户"))
        if order is not None and order.status == RechargeOrder.Status.PENDING:
            offered.append(("sync_order", "向微信查询这笔订单，按微信的结果入账或关闭"))
        offered.append(("acknowledge", "已在别处处理或核实无需处理，仅标记为已处理"))
        return offered

    def get_urls(self):
        resolve = path("<int:pk>/resolve/", self.admin_site.admin_view(self.resolve_view), name="payments_incident_resolve")
        return [resolve, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        incident = self.get_object(request, object_id)
        if incident is not None and incident.is_open and self.has_resolve_permission(request):
            context["resolve_url"] = reverse("admin:payments_incident_resolve", args=[incident.pk])
        return super().change_view(request, object_id, form_url, context)

    def resolve_view(self, request, pk: int):
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        incident = get_object_or_404(Incident.objects.select_related("order", "refund"), pk=pk)
        fixes = self.fixes(incident, request.user)
        error = ""
        if request.method == "POST":
            fix, note = request.POST.get("fix", ""), request.POST.get("note", "").strip()
            if fix not in dict(fixes):
                error = "请选择处理方式"
            elif not note:
                error = "请写明处理说明"
            elif not incident.is_open:
                error = "这条异常已由他人处理"
            else:
                error = self._apply_fix(request, incident, fix, note[:200])
                if not error:
                    return redirect("admin:payments_incident_change", incident.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"处理异常：{incident}",
            "original": incident,
            "fixes": fixes,
            "error": error,
            "note": request.POST.get("note", ""),
        }
        return TemplateResponse(request, "admin/payments/incident/resolve.html", context)

    def _apply_fix(self, request, incident: Incident, fix: str, note: str) -> str:
        """Run the fix, then resolve (a compare-and-set: one of two operators wins); "" when done."""
        changes: dict = {"处理方式": dict(self.fixes(incident, request.user))[fix]}
        try:
            if fix == "sync_refund" and incident.refund is not None:
                refund = services.sync_refund(incident.refund)
                changes["退款状态"] = refund.get_status_display()
            elif fix == "sync_order" and incident.order is not None:
                order = services.sync_order(incident.order)
                changes["订单状态"] = order.status_text
                if incident.kind == Incident.Kind.AMOUNT_MISMATCH and not order.is_credited:
                    return "微信实收金额仍与订单金额不符，订单未入账：请选择按微信实收入账或全额退回"
            elif fix in ("credit_taken", "refund_taken") and incident.order is not None:
                how = services.MismatchSettled.CREDIT if fix == "credit_taken" else services.MismatchSettled.REFUND
                settled = services.settle_mismatch(incident.order, how, note, request.user)
                changes["订单金额"] = audit.change(format_fen(settled.placed_amount), format_fen(settled.order.amount))
                changes["订单状态"] = settled.order.status_text
                if (made := settled.refund) is not None:
                    changes["退款"] = f"{made.out_refund_no} ¥{made.amount_yuan} {made.get_status_display()}"
                audit.record("order.settle_taken", request=request, obj=settled.order, changes=changes, reason=note)
        except WeChatError as exc:
            return f"向微信查询失败：{exc.code}（{exc}），异常未标记为已处理"
        except RefundRefused as exc:
            return f"{exc}，异常未标记为已处理"
        if not incident.resolve(request.user, note):
            return "这条异常已由他人处理"
        audit.record("incident.resolve", request=request, obj=incident, changes=changes, reason=note)
        self.message_user(request, f"已处理：{changes['处理方式']}", messages.SUCCESS)
        return ""

    @admin.display(description="订单")
    def order_link(self, obj: Incident) -> str:
        return link(obj.order)

    @admin.display(description="退款")
    def refund_link(self, obj: Incident) -> str:
        return link(obj.refund)

    @admin.display(description="商户订单号 / 退款", ordering="out_trade_no")
    def trade_display(self, obj: Incident) -> str:
        trade = link(obj.order, obj.order.out_trade_no) if obj.order else (obj.out_trade_no or "-")
        return format_html("{}<br>退款 {}", trade, link(obj.refund)) if obj.refund else trade

    @admin.display(description="发现时间", ordering="created_at")
    def created_display(self, obj: Incident) -> str:
        return when(obj.created_at)

    @admin.display(description="最近出现", ordering="last_seen_at")
    def last_seen_display(self, obj: Incident) -> str:
        return when(obj.last_seen_at)

    @admin.display(description="说明")
    def short_message(self, obj: Incident) -> str:
        return Truncator(obj.message).chars(60)

    @admin.display(description="状态", ordering="resolved_at")
    def state(self, obj: Incident) -> str:
        if obj.is_open:
            return "未处理"
        return f"已处理（{obj.resolved_by or '-'}）"

    @admin.display(description="相关通知")
    def notifications_list(self, obj: Incident) -> str:
        notifications = obj.notifications.order_by("-received_at")[:50]
        if not notifications:
            return "-"
        rows = format_html_join(
            "",
            '<li><a href="{}">{} {} {}</a></li>',
            (
                (
                    change_url(n),
                    timezone.localtime(n.received_at).strftime("%Y-%m-%d %H:%M:%S"),
                    n.get_kind_display(),
                    n.get_outcome_display(),
                )
                for n in notifications
            ),
        )
        everything = link_to(changelist_url(Notification, incident=obj.pk), "查看全部")
        return format_html('<ul class="incident-notifications">{}</ul>{}', rows, everything)

    @admin.action(description="标记为已处理", permissions=["resolve"])
    def resolve_selected(self, request, queryset):
        note, page = confirm_with_reason(
            self,
            request,
            queryset,
            title="标记异常为已处理",
            description="请写明如何处理的（如：已向用户退款、已补入余额、已核实无需处理）：",
            confirm_label="确认已处理",
        )
        if page is not None:
            return page
        resolved = 0
        for incident in queryset:
            # One wins when two operators resolve it at once (resolve is a compare-and-set).
            if incident.resolve(request.user, note):
                resolved += 1
                audit.record("incident.resolve", request=request, obj=incident, reason=note)
        self.message_user(request, f"已将 {resolved} 条异常标记为已处理")
        if resolved < len(queryset):
            self.message_user(request, f"跳过 {len(queryset) - resolved} 条：已由他人处理", messages.WARNING)
        return None


@start_page_panel
def _figures(request) -> dict:
    """The start page's figures are about orders: only for those who may see orders."""
    return {"dashboard": dashboard()} if request.user.has_perm("orders.view_rechargeorder") else {}

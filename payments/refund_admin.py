"""Members' refund requests in the admin (退款申请): the queue, approving or declining one with a
note, and recording how a manual refund (past WeChat's one-year window) was paid.
payments/admin.py imports this module, which registers them."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit import log as audit
from common.admin import ReadOnlyAdmin, ReadOnlyInline, changelist_url, link, start_page_panel, when
from common.money import yuan
from orders.models import Refund
from payments import services
from payments.refund_requests import RefundRequest, RefundRequestLine, RequestRefused

PENDING = RefundRequest.Status.PENDING


class DecisionForm(forms.Form):
    note = forms.CharField(
        label="处理说明",
        max_length=200,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="用户会在退款页面看到；拒绝时必须填写",
    )


class PayoutForm(forms.Form):
    payout = forms.CharField(
        label="线下退款方式",
        max_length=200,
        help_text="如：银行转账，工商银行尾号 1234，流水号 …；现金，经办人 …",
        error_messages={"required": "请填写线下退款方式"},
    )


class LineInline(ReadOnlyInline):
    model = RefundRequestLine
    fields = ("order_link", "amount_display", "bonus_display", "manual", "refund_link", "refund_status", "note")
    readonly_fields = fields
    verbose_name_plural = "各笔充值"

    @admin.display(description="充值订单")
    def order_link(self, obj: RefundRequestLine) -> str:
        return link(obj.order)

    @admin.display(description="申请时可退")
    def amount_display(self, obj: RefundRequestLine) -> str:
        return yuan(obj.amount)

    @admin.display(description="将扣回赠送")
    def bonus_display(self, obj: RefundRequestLine) -> str:
        return yuan(obj.bonus)

    @admin.display(description="退款")
    def refund_link(self, obj: RefundRequestLine) -> str:
        return link(obj.refund, f"{obj.refund} ¥{obj.refund.amount_yuan}" if obj.refund else None)

    @admin.display(description="退款状态", empty_value="-")
    def refund_status(self, obj: RefundRequestLine) -> str:
        if obj.refund is None:
            return ""
        if obj.refund.status == Refund.Status.MANUAL:
            url = reverse("admin:orders_refund_payout", args=[obj.refund.pk])
            return link_button(url, "登记线下退款")
        return obj.refund.get_status_display()


def link_button(url: str, text: str) -> str:
    from django.utils.html import format_html

    return format_html('<a class="button" href="{}">{}</a>', url, text)


@admin.register(RefundRequest)
class RefundRequestAdmin(ReadOnlyAdmin):
    list_display = ("number", "user_link", "amount_display", "bonus_display", "status", "auto_approved", "created", "decided_by")
    list_filter = ("status", "auto_approved")
    exact_search_fields = ("number", "user__username")
    list_select_related = ("user", "decided_by")
    fields = (
        "number",
        "user_link",
        "reason",
        "amount_display",
        "bonus_display",
        "status",
        "auto_approved",
        "created_at",
        "decided_by",
        "decided_at",
        "note",
    )
    readonly_fields = fields
    inlines = [LineInline]

    def has_decide_permission(self, request) -> bool:
        return request.user.has_perm("payments.decide_refundrequest")

    @admin.display(description="用户", ordering="user__username")
    def user_link(self, obj: RefundRequest) -> str:
        return link(obj.user, f"{obj.user.username}（余额 ¥{obj.user.balance_yuan}）")

    @admin.display(description="申请时可退", ordering="amount")
    def amount_display(self, obj: RefundRequest) -> str:
        return yuan(obj.amount)

    @admin.display(description="将扣回赠送")
    def bonus_display(self, obj: RefundRequest) -> str:
        return yuan(obj.bonus)

    @admin.display(description="申请时间", ordering="created_at")
    def created(self, obj: RefundRequest) -> str:
        return when(obj.created_at)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None and obj.status == PENDING and self.has_decide_permission(request):
            context["decide_urls"] = [
                (reverse("admin:payments_refundrequest_approve", args=[obj.pk]), "同意退款", "approve"),
                (reverse("admin:payments_refundrequest_decline", args=[obj.pk]), "拒绝", "decline"),
            ]
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self):
        decide = [
            path(
                f"<int:pk>/{decision}/",
                self.admin_site.admin_view(self.decide_view),
                {"decision": decision},
                name=f"payments_refundrequest_{decision}",
            )
            for decision in ("approve", "decline")
        ]
        return [*decide, *super().get_urls()]

    def decide_view(self, request, pk: int, decision: str):
        """Approve (each recharge refunded through its own order) or decline, with a note."""
        if not self.has_decide_permission(request):
            raise PermissionDenied
        refund_request = get_object_or_404(RefundRequest.objects.select_related("user"), pk=pk)
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            try:
                if decision == "approve":
                    refunds = services.approve_refund_request(refund_request, request.user, note)
                else:
                    refund_request.decline(request.user, note)
            except RequestRefused as exc:
                form.add_error(None, str(exc))
            else:
                audit.record(
                    f"refund_request.{decision}",
                    request=request,
                    obj=refund_request,
                    changes={"退款": [f"{r.out_refund_no} {yuan(r.amount)}" for r in refunds]} if decision == "approve" else {},
                    reason=note,
                )
                if decision == "approve":
                    total = yuan(sum(r.amount for r in refunds))
                    manual = sum(1 for r in refunds if r.manual)
                    text = f"已同意 {refund_request.number}：{len(refunds)} 笔退款，共 {total}"
                    if manual:
                        text += f"；其中 {manual} 笔超过微信一年退款期限，请线下退款后登记"
                    self.message_user(request, text, messages.SUCCESS)
                else:
                    self.message_user(request, f"已拒绝 {refund_request.number}", messages.SUCCESS)
                return redirect("admin:payments_refundrequest_change", refund_request.pk)
        action = "同意退款" if decision == "approve" else "拒绝退款申请"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{action}：{refund_request.number}",
            "action": action,
            "decision": decision,
            "original": refund_request,
            "form": form,
            "lines": [
                (line, yuan(line.order.refundable_amount()))
                for line in refund_request.lines.select_related("order", "refund").order_by("pk")
            ],
        }
        return TemplateResponse(request, "admin/payments/refundrequest/decide.html", context)


# -- a manual refund's payout, on the refund's own admin --------------------------------------------


def payout_view(model_admin, request, pk: int):
    """Record how a manual refund (线下退款) was paid: it ends as a success."""
    if not request.user.has_perm("orders.refund_rechargeorder"):
        raise PermissionDenied
    refund = get_object_or_404(Refund.objects.select_related("order__user"), pk=pk)
    form = PayoutForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        outcome = refund.record_payout(request.user, form.cleaned_data["payout"])
        if outcome == "applied":
            audit.record(
                "refund.payout",
                request=request,
                obj=refund,
                changes={"金额": f"¥{refund.amount_yuan}"},
                reason=form.cleaned_data["payout"],
            )
            model_admin.message_user(request, f"已登记 {refund.out_refund_no} 的线下退款 ¥{refund.amount_yuan}", messages.SUCCESS)
            return redirect("admin:orders_refund_change", refund.pk)
        form.add_error(None, f"该退款不是待线下退款的状态（{refund.get_status_display()}）")
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"登记线下退款：{refund.out_refund_no}",
        "action": "登记线下退款",
        "original": refund,
        "form": form,
    }
    return TemplateResponse(request, "admin/orders/refund/payout.html", context)


@start_page_panel
def _refund_requests_waiting(request) -> dict:
    """The queue of members' refund requests waiting for a decision."""
    if not request.user.has_perm("payments.view_refundrequest"):
        return {}
    waiting = RefundRequest.objects.filter(status=PENDING).count()
    return {"refund_requests": {"waiting": waiting, "url": changelist_url(RefundRequest, status__exact=PENDING)}}

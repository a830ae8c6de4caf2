"""Operators' pages for orders and refunds (docs/product.md#8-operators): here rather than in
orders because their actions (query WeChat, close, refund) are payment flows.

Nothing here edits a record: orders and refunds change only through payments.services
(the actions and the refund page call it, as the site and the reconciler do). The order
page is therefore view-only, with actions and the refund page guarded by the custom
permissions instead. payments/admin.py imports this module, which registers them.
"""

from __future__ import annotations

import re
from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Sum
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from accounts.models import User
from audit import log as audit
from audit.export import ExportMixin
from common.admin import (
    SEARCH_LIMIT,
    ReadOnlyAdmin,
    ReadOnlyInline,
    change_url,
    changelist_url,
    confirm_with_reason,
    link,
    link_to,
    when,
)
from common.admin_filters import AmountRangeFilter, DateRangeFilter
from common.money import format_fen, parse_yuan, yuan
from orders.models import LedgerEntry, RechargeOrder, Refund, RefundRefused
from payments import refund_admin, services
from payments.models import Incident, Notification
from payments.timeline import timeline
from wxproto.errors import WeChatError

OUT_REFUND_NO = re.compile(r"^RF[0-9]{26}$")
PENDING = RechargeOrder.Status.PENDING
BAD_AMOUNT = "请输入正确的金额（元，最多两位小数）"


def can_sync(request) -> bool:
    return request.user.has_perm("orders.sync_rechargeorder")


def can_refund(request) -> bool:
    return request.user.has_perm("orders.refund_rechargeorder")


def _counts(counter: Counter) -> str:
    return "，".join(f"{label} {n} 笔" for label, n in counter.items())


# -- orders ------------------------------------------------------------------------------------

# An order number's first or last digits find it from this many on (fewer would match too much).
PARTIAL_DIGITS = 6
ORDER_NO_DIGITS = 26


class OpenIncidentFilter(admin.SimpleListFilter):
    title = "异常"
    parameter_name = "incident"

    def lookups(self, request, model_admin):
        return [("open", "有未处理异常")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(has_open_incident=True)
        return queryset


class RefundInline(ReadOnlyInline):
    model = Refund
    related_name = "refunds"
    fields = ("out_refund_no", "amount_display", "status", "reason", "requested_by", "created_at", "settled_at", "last_error")
    readonly_fields = fields
    verbose_name_plural = "退款记录"

    @admin.display(description="退款金额")
    def amount_display(self, obj: Refund) -> str:
        return yuan(obj.amount)


class OrderLedgerInline(ReadOnlyInline):
    model = LedgerEntry
    fk_name = "order"
    related_name = "ledger_entries"
    fields = ("created_at", "kind", "amount_display", "balance_after_display", "refund", "operator", "reason")
    readonly_fields = fields
    verbose_name_plural = "余额流水"

    @admin.display(description="变动")
    def amount_display(self, obj: LedgerEntry) -> str:
        return yuan(obj.amount)

    @admin.display(description="变动后余额")
    def balance_after_display(self, obj: LedgerEntry) -> str:
        return yuan(obj.balance_after)


class IncidentInline(ReadOnlyInline):
    model = Incident
    related_name = "incidents"
    fields = ("kind", "message", "occurrences", "last_seen_at", "resolved_at", "resolved_by")
    readonly_fields = fields
    verbose_name_plural = "异常"


class RefundForm(forms.Form):
    required_css_class = "required"

    amount = forms.CharField(
        label="退款金额（元）",
        max_length=20,
        error_messages={"required": BAD_AMOUNT},
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label="退款原因",
        max_length=200,
        error_messages={"required": "请填写退款原因"},
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    # Made when the page is shown: submitting the same form twice is one refund.
    out_refund_no = forms.RegexField(
        regex=OUT_REFUND_NO,
        widget=forms.HiddenInput,
        error_messages={"required": "退款申请已失效，请核对后重新提交", "invalid": "退款申请已失效，请核对后重新提交"},
    )

    def clean_amount(self) -> int:
        fen = parse_yuan(self.cleaned_data["amount"])
        if fen is None:
            raise forms.ValidationError(BAD_AMOUNT)
        return fen


@admin.register(RechargeOrder)
class RechargeOrderAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = (
        "out_trade_no",
        "user",
        "amount_display",
        "status_display",
        "channel",
        "trade_type",
        "created_at",
        "paid_at",
        "incident_marker",
    )
    list_filter = (
        "status",
        "channel",
        "trade_type",
        ("created_at", DateRangeFilter),
        ("paid_at", DateRangeFilter),
        ("amount", AmountRangeFilter),
        OpenIncidentFilter,
    )
    exact_search_fields = ("out_trade_no", "transaction_id", "user__username", "openid")
    search_help_text = "订单号（完整，或开头、末尾至少 6 位数字）、用户名（包含即可）、openid、微信支付单号（完整）"
    change_list_template = "admin/orders/rechargeorder/change_list.html"
    export_name = "orders"
    export_columns = [
        ("商户订单号", lambda o: o.out_trade_no),
        ("用户", lambda o: o.user.username),
        ("金额（元）", lambda o: format_fen(o.amount)),
        ("状态", lambda o: o.status_text),
        ("已退款（元）", lambda o: format_fen(o.refunded_amount)),
        ("赠送（元）", lambda o: format_fen(o.bonus)),
        ("渠道", lambda o: o.get_channel_display()),
        ("支付方式", lambda o: o.get_trade_type_display()),
        ("微信支付单号", lambda o: o.transaction_id or ""),
        ("下单时间", lambda o: o.created_at),
        ("支付时间", lambda o: o.paid_at),
        ("openid", lambda o: o.openid),
    ]
    list_select_related = ("user",)
    # Rendering a row is most of the page's cost: 50 keep the list under 100 ms.
    list_per_page = 50
    fields = (
        "out_trade_no",
        "user_link",
        "amount_display",
        "status_display",
        "refundable_display",
        "channel",
        "trade_type",
        "openid",
        "transaction_id",
        "paid_at",
        "paid_reported_at",
        "close_reason",
        "prepay_error",
        "prepay_id",
        "prepay_expires_at",
        "pay_url",
        "pay_url_expires_at",
        "expires_at",
        "synced_at",
        "created_at",
        "updated_at",
        "notifications_link",
        "shipping_display",
        "bill_differences_display",
    )
    readonly_fields = fields
    inlines = [RefundInline, OrderLedgerInline, IncidentInline]
    actions = ["sync_selected", "close_selected", "refund_selected"]

    def get_queryset(self, request):
        open_incidents = Incident.objects.filter(order=OuterRef("pk"), resolved_at__isnull=True)
        return super().get_queryset(request).annotate(has_open_incident=Exists(open_incidents))

    def get_search_results(self, request, queryset, search_term):
        """Exact identifiers as before, and what operators type: the first or last digits of an
        order number (at least PARTIAL_DIGITS), part of a user name. Each is its own bounded
        lookup; the list is the union of what they found."""
        term = search_term.strip()
        found, _ = super().get_search_results(request, queryset, term)
        if not term:
            return found, False
        ids = set(found.values_list("pk", flat=True)[:SEARCH_LIMIT])
        orders = RechargeOrder.objects
        if term.isdigit() and PARTIAL_DIGITS <= len(term) < ORDER_NO_DIGITS:
            for lookup in ("out_trade_no__startswith", "out_trade_no__endswith"):
                ids.update(orders.filter(**{lookup: term}).values_list("pk", flat=True)[:SEARCH_LIMIT])
        elif term.isdigit() and len(term) < PARTIAL_DIGITS:
            self.message_user(request, f"按订单号查找请至少输入 {PARTIAL_DIGITS} 位数字（开头或末尾）", messages.WARNING)
        if not term.isdigit():
            users = User.objects.filter(username__icontains=term).values_list("pk", flat=True)[:SEARCH_LIMIT]
            ids.update(orders.filter(user_id__in=list(users)).values_list("pk", flat=True)[:SEARCH_LIMIT])
        return queryset.filter(pk__in=ids), False

    def changelist_view(self, request, extra_context=None):
        """The list as Django makes it, with the filtered orders' count and total amount."""
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            total = changelist.queryset.order_by().aggregate(total=Sum("amount"))["total"] or 0
            response.context_data["list_total"] = {"count": changelist.result_count, "amount": yuan(total)}
        return response

    # Viewing only (ReadOnlyAdmin): the page has no form to save, and actions check their own
    # permissions.
    def has_sync_permission(self, request) -> bool:
        return can_sync(request)

    def has_refund_permission(self, request) -> bool:
        return can_refund(request)

    # -- columns and fields --------------------------------------------------------------------
    @admin.display(description="金额", ordering="amount")
    def amount_display(self, obj: RechargeOrder) -> str:
        return yuan(obj.amount)

    @admin.display(description="状态", ordering="status")
    def status_display(self, obj: RechargeOrder) -> str:
        if obj.refunded_amount:
            return f"{obj.status_text}（已退 ¥{obj.refunded_yuan}）"
        return obj.status_text

    @admin.display(description="异常", ordering="has_open_incident", empty_value="")
    def incident_marker(self, obj: RechargeOrder) -> str:
        return "⚠ 异常" if getattr(obj, "has_open_incident", False) else ""

    @admin.display(description="用户")
    def user_link(self, obj: RechargeOrder) -> str:
        return link(obj.user, f"{obj.user.username}（余额 ¥{obj.user.balance_yuan}）")

    @admin.display(description="可退金额")
    def refundable_display(self, obj: RechargeOrder) -> str:
        return yuan(obj.refundable_amount())

    @admin.display(description="通知日志")
    def notifications_link(self, obj: RechargeOrder) -> str:
        count = Notification.objects.filter(out_trade_no=obj.out_trade_no).count()
        return link_to(changelist_url(Notification, out_trade_no=obj.out_trade_no), f"查看 {count} 条通知")

    @admin.display(description="发货信息（小程序）")
    def shipping_display(self, obj: RechargeOrder) -> str:
        """The shipping record WeChat's 发货信息管理 needs of a mini-program payment (docs/messages.md)."""
        if obj.channel != RechargeOrder.Channel.MINIPROGRAM or not obj.is_credited:
            return "-"
        record = obj.shipping_records.first()
        if record is None:
            return "未生成（消息推送任务尚未处理，或已关闭发货信息上传）"
        state = record.get_status_display()
        if record.status == record.Status.SENT:
            state = f"已上传（{when(record.sent_at)}）"
        elif record.last_error:
            state = f"{state}：{record.last_errcode} {record.last_error}（已尝试 {record.attempts} 次）"
        return link_to(reverse("admin:messaging_message_change", args=[record.pk]), state)

    @admin.display(description="对账")
    def bill_differences_display(self, obj: RechargeOrder) -> str:
        """Each reconciliation difference naming the order, linked to its day's page."""
        differences = obj.bill_differences.select_related("bill_day").order_by("bill_day__date", "kind")
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{} {}（{}）</a>',
            (
                (change_url(d.bill_day), d.bill_day.date.isoformat(), d.get_kind_display(), d.get_outcome_display())
                for d in differences
            ),
        )

    # -- the change page -----------------------------------------------------------------------
    def get_fields(self, request, obj=None):
        """对账 only where reconciliation found something about the order, for those who may see it."""
        fields = super().get_fields(request, obj)
        if obj is None or not request.user.has_perm("reconciliation.view_billday") or not obj.bill_differences.exists():
            return [f for f in fields if f != "bill_differences_display"]
        return fields

    def get_inline_instances(self, request, obj=None):
        """Only the related rows there are: an empty table with headers says nothing."""
        inlines = super().get_inline_instances(request, obj)
        return [i for i in inlines if obj is None or getattr(obj, i.related_name).exists()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        order = self.get_object(request, object_id)
        if order is not None and self.has_refund_permission(request) and order.refundable_amount() > 0:
            context["refund_url"] = reverse("admin:orders_rechargeorder_refund", args=[order.pk])
        if order is not None:
            context["timeline"] = timeline(order, request.user)  # 订单经过, under the order's fields
        return super().change_view(request, object_id, form_url, context)

    # -- actions -------------------------------------------------------------------------------
    @admin.action(description="向微信查询并同步", permissions=["sync"])
    def sync_selected(self, request, queryset):
        def outcome(order: RechargeOrder) -> str:
            return order.status_text if order.status != PENDING else "仍待支付"

        self._each_pending(
            request,
            queryset,
            services.sync_order,
            outcome,
            ("查询失败", "向微信查询失败"),
            "已向微信查询",
            "非待支付订单无需同步",
            "order.sync",
        )

    @admin.action(description="关闭订单", permissions=["sync"])
    def close_selected(self, request, queryset):
        reason, page = confirm_with_reason(
            self,
            request,
            queryset,
            title="关闭订单",
            description="关闭后这些订单不能再支付（已在微信付款的会被同步入账）。请写明关闭的原因：",
            confirm_label="确认关闭",
        )
        if page is not None:
            return page

        def outcome(order: RechargeOrder) -> str:
            # ORDERPAID: the money was taken, so close_order synced and credited it instead.
            done = {RechargeOrder.Status.CLOSED: "已关闭", RechargeOrder.Status.PAID: "微信已支付，已同步入账"}
            return done.get(RechargeOrder.Status(order.status), order.status_text)

        self._each_pending(
            request,
            queryset,
            services.close_order,
            outcome,
            ("关闭失败", "关闭失败"),
            "关闭订单",
            "只有待支付的订单可以关闭",
            "order.close",
            reason,
        )

    def _each_pending(
        self, request, queryset, act, outcome, failed: tuple[str, str], what: str, skip_reason: str, audited: str, reason=""
    ) -> None:
        """Run `act` (a service that talks to WeChat) on each pending order; `failed` names a
        failure in the summary and in the order's own message. Each try is in the audit log
        (`audited`), with the status it left the order in."""
        outcomes: Counter[str] = Counter()
        skipped = 0
        for order in queryset:
            if order.status != PENDING:
                skipped += 1
                continue
            before = order.status_text
            try:
                order = act(order)
            except WeChatError as exc:
                outcomes[failed[0]] += 1
                self.message_user(request, f"订单 {order.out_trade_no} {failed[1]}：{exc.code}（{exc}）", messages.ERROR)
                audit.record(audited, request=request, obj=order, changes={"结果": f"{failed[1]}：{exc.code}"}, reason=reason)
                continue
            outcomes[outcome(order)] += 1
            changes = {"状态": audit.change(before, outcome(order))}
            audit.record(audited, request=request, obj=order, changes=changes, reason=reason)
        self._report(request, what, outcomes, skipped, skip_reason)

    def _report(self, request, what: str, outcomes: Counter, skipped: int, skip_reason: str) -> None:
        if outcomes:
            level = messages.WARNING if any("失败" in label for label in outcomes) else messages.SUCCESS
            self.message_user(request, f"{what} {sum(outcomes.values())} 笔待支付订单：{_counts(outcomes)}", level)
        if skipped:
            self.message_user(request, f"跳过 {skipped} 笔订单：{skip_reason}", messages.WARNING)

    @admin.action(description="退款", permissions=["refund"])
    def refund_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "退款请只选择一笔订单", messages.WARNING)
            return None
        return redirect("admin:orders_rechargeorder_refund", queryset.get().pk)

    # -- the refund page -----------------------------------------------------------------------
    def get_urls(self):
        refund = path("<int:pk>/refund/", self.admin_site.admin_view(self.refund_view), name="orders_rechargeorder_refund")
        return [refund, *super().get_urls()]  # before the catch-all "<object_id>/"

    def refund_view(self, request, pk: int):
        """Refund part or all of a paid order: the operator types yuan and a reason; the
        service checks everything else (what is left, the balance, 50 refunds)."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        order = get_object_or_404(RechargeOrder.objects.select_related("user"), pk=pk)
        if request.method == "POST":
            form = RefundForm(request.POST)
            if form.is_valid():
                try:
                    refund = services.request_refund(
                        order,
                        form.cleaned_data["amount"],
                        form.cleaned_data["reason"],
                        request.user,
                        form.cleaned_data["out_refund_no"],
                    )
                except RefundRefused as exc:
                    form.add_error(None, str(exc))
                else:
                    audit.record(
                        "order.refund",
                        request=request,
                        obj=order,
                        changes={
                            "退款单号": refund.out_refund_no,
                            "退款金额": yuan(refund.amount),
                            "退款状态": refund.get_status_display(),
                        },
                        reason=form.cleaned_data["reason"],
                    )
                    self._report_refund(request, refund)
                    return redirect("admin:orders_rechargeorder_change", order.pk)
        else:
            default = order.refundable_amount()
            form = RefundForm(initial={"amount": format_fen(default), "out_refund_no": Refund.new_out_refund_no()})
        return TemplateResponse(request, "admin/orders/rechargeorder/refund.html", self._refund_context(request, order, form))

    def _refund_context(self, request, order: RechargeOrder, form: RefundForm) -> dict:
        refundable = order.refundable_amount()
        # A refused form keeps its number (nothing was made with it); a bad one gets a fresh one.
        out_refund_no = form.cleaned_data.get("out_refund_no") if form.is_bound else form.initial["out_refund_no"]
        # Refunds still 处理中 (or 异常) hold money that is neither refunded nor refundable.
        held = order.refund_totals()[1] - order.refunded_amount if order.is_credited else 0
        terms = order.refund_terms()
        form.fields[
            "amount"
        ].help_text = f"可退 {yuan(refundable)}（未消费的本金）；最多两位小数。全部退款时扣回剩余赠送，部分退款按比例扣回"
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"退款：订单 {order.out_trade_no}",
            "order": order,
            "form": form,
            "out_refund_no": out_refund_no or Refund.new_out_refund_no(),
            "refundable": yuan(refundable),
            "in_progress": yuan(held) if held else None,
            "balance": yuan(order.user.balance),
            "terms": terms
            and {
                "paid": yuan(terms.paid),
                "bonus": yuan(terms.bonus),
                "consumed": f"{yuan(terms.consumed)}（本金 {yuan(terms.consumed_paid)}，赠送 {yuan(terms.consumed_bonus)}）",
                "bonus_gone": yuan(terms.bonus_gone) if terms.bonus_gone else None,
                "bonus_left": yuan(terms.bonus_left),
                "expires": terms.bonus_expires_at,
            },
            "refunds": order.refunds.select_related("requested_by"),
            "max_refunds": RechargeOrder.MAX_REFUNDS,
        }

    def _report_refund(self, request, refund: Refund) -> None:
        text = f"退款 {refund.out_refund_no}：¥{refund.amount_yuan}，状态：{refund.get_status_display()}"
        if refund.status == Refund.Status.FAILED:
            self.message_user(request, f"{text}。微信拒绝了退款（{refund.last_error}），金额已退回用户余额", messages.ERROR)
        elif refund.last_error:
            self.message_user(request, f"{text}。暂未送达微信（{refund.last_error}），稍后会用同一单号自动重试", messages.WARNING)
        else:
            self.message_user(request, f"已提交{text}", messages.SUCCESS)


# -- refunds -----------------------------------------------------------------------------------


@admin.register(Refund)
class RefundAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = (
        "out_refund_no",
        "order_link",
        "order_user",
        "amount_display",
        "status",
        "requested_by",
        "created",
        "settled",
        "error",
    )
    list_filter = ("status", ("created_at", DateRangeFilter), ("settled_at", DateRangeFilter))
    change_list_template = "admin/export_change_list.html"
    export_name = "refunds"
    export_columns = [
        ("商户退款单号", lambda r: r.out_refund_no),
        ("商户订单号", lambda r: r.order.out_trade_no),
        ("用户", lambda r: r.order.user.username),
        ("退款金额（元）", lambda r: format_fen(r.amount)),
        ("状态", lambda r: r.get_status_display()),
        ("原因", lambda r: r.reason),
        ("发起人", lambda r: r.requested_by.get_username() if r.requested_by else ""),
        ("微信退款单号", lambda r: r.refund_id or ""),
        ("申请时间", lambda r: r.created_at),
        ("完成时间", lambda r: r.settled_at),
        ("线下退款", lambda r: r.payout if r.manual else ""),
    ]
    exact_search_fields = ("out_refund_no", "order__out_trade_no", "refund_id")
    list_select_related = ("order__user", "requested_by")
    fields = (
        "out_refund_no",
        "order_link",
        "order_user",
        "amount_display",
        "status",
        "reason",
        "requested_by",
        "refund_id",
        "accepted",
        "manual",
        "payout",
        "paid_out_by",
        "last_error",
        "created_at",
        "synced_at",
        "settled_at",
        "updated_at",
    )
    readonly_fields = fields
    actions = ["sync_selected"]

    def get_urls(self):
        payout = path(
            "<int:pk>/payout/",
            self.admin_site.admin_view(lambda request, pk: refund_admin.payout_view(self, request, pk)),
            name="orders_refund_payout",
        )
        return [payout, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        refund = self.get_object(request, object_id)
        if refund is not None and refund.status == Refund.Status.MANUAL and self.has_refund_permission(request):
            context["payout_url"] = reverse("admin:orders_refund_payout", args=[refund.pk])
        return super().change_view(request, object_id, form_url, context)

    def has_refund_permission(self, request) -> bool:
        return can_refund(request)

    @admin.display(description="订单", ordering="order__out_trade_no")
    def order_link(self, obj: Refund) -> str:
        return link(obj.order)

    @admin.display(description="用户")
    def order_user(self, obj: Refund) -> str:
        return link(obj.order.user, obj.order.user.username)

    @admin.display(description="退款金额", ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return yuan(obj.amount)

    @admin.display(description="错误", empty_value="")
    def error(self, obj: Refund) -> str:
        return Truncator(obj.last_error).chars(40)

    @admin.display(description="申请时间", ordering="created_at")
    def created(self, obj: Refund) -> str:
        return when(obj.created_at)

    @admin.display(description="完成时间", ordering="settled_at")
    def settled(self, obj: Refund) -> str:
        return when(obj.settled_at)

    @admin.action(description="向微信查询退款结果", permissions=["refund"])
    def sync_selected(self, request, queryset):
        outcomes, skipped = Counter(), 0
        for refund in queryset.select_related("order"):
            if refund.status not in Refund.OPEN:  # 退款中, or 退款异常 (resolved at WeChat since?)
                skipped += 1
                continue
            before = refund.get_status_display()
            try:
                refund = services.sync_refund(refund)
            except WeChatError as exc:
                outcomes["查询失败"] += 1
                self.message_user(request, f"退款 {refund.out_refund_no} 查询失败：{exc.code}（{exc}）", messages.ERROR)
                audit.record("refund.sync", request=request, obj=refund, changes={"结果": f"查询失败：{exc.code}"})
                continue
            outcomes[refund.get_status_display()] += 1
            audit.record(
                "refund.sync", request=request, obj=refund, changes={"状态": audit.change(before, refund.get_status_display())}
            )
        if outcomes:
            self.message_user(request, f"已向微信查询 {sum(outcomes.values())} 笔退款：{_counts(outcomes)}")
        if skipped:
            self.message_user(request, f"跳过 {skipped} 笔已完成的退款（只查询退款中的）", messages.WARNING)

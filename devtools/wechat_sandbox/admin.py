"""The sandbox's own tables in the admin (微信沙箱): what WeChat would hold on its side.

Amounts are shown in yuan, as everywhere in the admin; WeChat's fen stay visible on a
record's page. States show WeChat's code beside its meaning.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from common.admin import ReadOnlyAdmin, when
from common.money import yuan
from devtools.wechat_sandbox.models import (
    AccessToken,
    AppUser,
    Attempt,
    AuthCode,
    Delivery,
    Fault,
    MessageTemplate,
    Refund,
    RobotMessage,
    SentMessage,
    ShippingOrder,
    ShippingUpload,
    SubscribeDecision,
    Trade,
)


def code_and_label(code: str, label: str) -> str:
    return format_html("<code>{}</code> {}", code, label) if code else "-"


def yuan_and_fen(fen: int) -> str:
    return f"{yuan(fen)}（{fen} 分）"


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = ("out_refund_no", "refund_id", "amount", "state_display", "settle_at", "success_time", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="退款金额")
    def amount(self, obj: Refund) -> str:
        return yuan(obj.refund_fee)

    @admin.display(description="退款状态")
    def state_display(self, obj: Refund) -> str:
        return code_and_label(obj.state, obj.get_state_display())


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "out_trade_no",
        "state_display",
        "amount",
        "refunded",
        "transaction_id",
        "trade_type",
        "api_version",
        "created",
    )
    list_filter = ("state", "trade_type", "api_version")
    exact_search_fields = ("out_trade_no", "transaction_id", "prepay_id", "openid")
    fields = (
        "out_trade_no",
        "state_display",
        "amount_detail",
        "refunded_detail",
        "trade_type",
        "body",
        "attach",
        "mch_id",
        "appid",
        "openid",
        "transaction_id",
        "prepay_id",
        "prepay_expires_at",
        "time_expire",
        "time_end",
        "sign_type",
        "api_version",
        "notify_url",
        "scene_info",
        "pay_token",
        "pay_token_expires_at",
        "params_digest",
        "created_at",
    )
    readonly_fields = fields
    inlines = [RefundInline]

    @admin.display(description="交易状态", ordering="state")
    def state_display(self, obj: Trade) -> str:
        return code_and_label(obj.state, obj.get_state_display())

    @admin.display(description="金额", ordering="total_fee")
    def amount(self, obj: Trade) -> str:
        return yuan(obj.total_fee)

    @admin.display(description="已退金额", ordering="refunded_fee", empty_value="")
    def refunded(self, obj: Trade) -> str:
        return yuan(obj.refunded_fee) if obj.refunded_fee else ""

    @admin.display(description="下单时间", ordering="created_at")
    def created(self, obj: Trade) -> str:
        return when(obj.created_at)

    @admin.display(description="金额")
    def amount_detail(self, obj: Trade) -> str:
        return yuan_and_fen(obj.total_fee)

    @admin.display(description="已退金额")
    def refunded_detail(self, obj: Trade) -> str:
        return yuan_and_fen(obj.refunded_fee)


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = ("at", "outcome_display", "status_code", "headers", "answer")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="结果")
    def outcome_display(self, obj: Attempt) -> str:
        return code_and_label(obj.outcome, obj.label)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("trade", "kind", "api_version", "state", "attempts", "next_attempt", "created")
    list_filter = ("state", "kind", "api_version")
    exact_search_fields = ("trade__out_trade_no",)
    list_select_related = ("trade",)
    inlines = [AttemptInline]

    @admin.display(description="下次尝试时间", ordering="next_attempt_at")
    def next_attempt(self, obj: Delivery) -> str:
        return when(obj.next_attempt_at) if obj.state == Delivery.PENDING else "-"

    @admin.display(description="创建时间", ordering="created_at")
    def created(self, obj: Delivery) -> str:
        return when(obj.created_at)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("out_refund_no", "trade", "amount", "state_display", "api_version", "settle", "created")
    list_filter = ("state", "api_version")
    exact_search_fields = ("out_refund_no", "refund_id", "trade__out_trade_no")
    list_select_related = ("trade",)
    fields = (
        "out_refund_no",
        "refund_id",
        "trade",
        "amount_detail",
        "state_display",
        "api_version",
        "reason",
        "notify_url",
        "settle_at",
        "success_time",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="退款金额", ordering="refund_fee")
    def amount(self, obj: Refund) -> str:
        return yuan(obj.refund_fee)

    @admin.display(description="退款金额")
    def amount_detail(self, obj: Refund) -> str:
        return yuan_and_fen(obj.refund_fee)

    @admin.display(description="退款状态", ordering="state")
    def state_display(self, obj: Refund) -> str:
        return code_and_label(obj.state, obj.get_state_display())

    @admin.display(description="结算时间", ordering="settle_at")
    def settle(self, obj: Refund) -> str:
        return when(obj.settle_at)

    @admin.display(description="申请时间", ordering="created_at")
    def created(self, obj: Refund) -> str:
        return when(obj.created_at)


@admin.register(AuthCode)
class AuthCodeAdmin(ReadOnlyAdmin):
    list_display = ("kind", "appid", "openid", "expires", "used")
    exact_search_fields = ("openid",)
    exclude = ("code",)

    @admin.display(description="过期时间", ordering="expires_at")
    def expires(self, obj: AuthCode) -> str:
        return when(obj.expires_at)

    @admin.display(description="使用时间", ordering="used_at")
    def used(self, obj: AuthCode) -> str:
        return when(obj.used_at)


@admin.register(AccessToken)
class AccessTokenAdmin(ReadOnlyAdmin):
    list_display = ("appid", "kind", "forced", "issued", "expires", "replaced", "revoked")
    list_filter = ("kind", "forced")
    exact_search_fields = ("appid",)
    exclude = ("access_token",)

    @admin.display(description="发放时间", ordering="issued_at")
    def issued(self, obj: AccessToken) -> str:
        return when(obj.issued_at)

    @admin.display(description="过期时间", ordering="expires_at")
    def expires(self, obj: AccessToken) -> str:
        return when(obj.expires_at)

    @admin.display(description="被替换时间", ordering="replaced_at")
    def replaced(self, obj: AccessToken) -> str:
        return when(obj.replaced_at)

    @admin.display(description="作废时间", ordering="revoked_at")
    def revoked(self, obj: AccessToken) -> str:
        return when(obj.revoked_at)


@admin.register(Fault)
class FaultAdmin(admin.ModelAdmin):
    list_display = (
        "scope",
        "drop_notifies",
        "duplicate_notifies",
        "notify_delay_seconds",
        "corrupt_signature",
        "reported_total_fee",
        "systemerror_endpoints",
        "end_state",
        "v3_notify_signature",
        "h5_no_auth",
        "token_busy",
        "bill_switches",
    )
    list_display_links = ("scope",)
    search_fields = ("out_trade_no",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "out_trade_no",
                    "drop_notifies",
                    "duplicate_notifies",
                    "notify_delay_seconds",
                    "corrupt_signature",
                    "report_total_fee",
                    "systemerror_endpoints",
                    "end_state",
                    "v3_notify_signature",
                    "h5_no_auth",
                    "token_busy",
                )
            },
        ),
        (
            "消息、发货与告警",
            {
                "fields": (
                    "message_fail_errcode",
                    "message_fail_times",
                    "shipping_fail_errcode",
                    "shipping_fail_times",
                    "robot_down",
                ),
                "description": "模板消息与订阅消息的发送、发货信息录入、企业微信群机器人；只在全局开关中有效。",
            },
        ),
        (
            "对账单",
            {
                "fields": (
                    "bill_omit",
                    "bill_total_fee",
                    "bill_duplicate_row",
                    "bill_add_unknown_trade",
                    "bill_corrupt_summary",
                    "bill_not_ready",
                ),
                "description": "v2 downloadbill 与 v3 tradebill 的账单；标「仅全局」的只在全局开关（商户订单号留空）中有效。",
            },
        ),
    )

    @admin.display(description="对账单")
    def bill_switches(self, obj: Fault) -> str:
        parts = [
            text
            for on, text in (
                (obj.bill_omit, "略去"),
                (obj.bill_total_fee is not None, f"金额 {yuan(obj.bill_total_fee or 0)}"),
                (obj.bill_duplicate_row, "重复一行"),
                (obj.bill_add_unknown_trade, "多一笔未知交易"),
                (obj.bill_corrupt_summary, "汇总金额错"),
                (obj.bill_not_ready, "生成中"),
            )
            if on
        ]
        return "、".join(parts) or "-"

    @admin.display(description="范围", ordering="out_trade_no")
    def scope(self, obj: Fault) -> str:
        return str(obj)

    @admin.display(description="报告的 total_fee", ordering="report_total_fee")
    def reported_total_fee(self, obj: Fault) -> str:
        return "-" if obj.report_total_fee is None else yuan_and_fen(obj.report_total_fee)


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ReadOnlyAdmin):
    list_display = ("title", "kind", "appid", "template_id", "deleted_at")
    list_filter = ("kind", "appid")
    exact_search_fields = ("template_id",)


@admin.register(AppUser)
class AppUserAdmin(admin.ModelAdmin):
    list_display = ("appid", "openid", "follows", "messages_blocked", "updated_at")
    list_filter = ("appid", "follows", "messages_blocked")
    search_fields = ("openid",)


@admin.register(SubscribeDecision)
class SubscribeDecisionAdmin(ReadOnlyAdmin):
    list_display = ("openid", "template_id", "decision", "decided", "used")
    list_filter = ("decision",)
    exact_search_fields = ("openid", "template_id")

    @admin.display(description="时间", ordering="decided_at")
    def decided(self, obj: SubscribeDecision) -> str:
        return when(obj.decided_at)

    @admin.display(description="用于发送的时间", ordering="used_at")
    def used(self, obj: SubscribeDecision) -> str:
        return when(obj.used_at)


@admin.register(SentMessage)
class SentMessageAdmin(ReadOnlyAdmin):
    list_display = ("title", "kind", "openid", "msgid", "sent")
    list_filter = ("kind", "appid")
    exact_search_fields = ("openid", "msgid", "template_id")
    exclude = ("dedupe_key",)

    @admin.display(description="发送时间", ordering="sent_at")
    def sent(self, obj: SentMessage) -> str:
        return when(obj.sent_at)


class ShippingUploadInline(admin.TabularInline):
    model = ShippingUpload
    extra = 0
    can_delete = False
    readonly_fields = ("upload_time", "reship", "received_at", "body")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ShippingOrder)
class ShippingOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "transaction",
        "out_trade_no",
        "logistics_type",
        "delivery_mode",
        "finish_shipping",
        "finish_shipping_count",
        "reshipped",
    )
    list_filter = ("logistics_type", "finish_shipping", "reshipped")
    list_select_related = ("trade",)
    exact_search_fields = ("trade__transaction_id", "trade__out_trade_no")
    inlines = [ShippingUploadInline]

    @admin.display(description="微信支付订单号", ordering="trade__transaction_id")
    def transaction(self, obj: ShippingOrder) -> str:
        return obj.trade.transaction_id or "-"

    @admin.display(description="商户订单号", ordering="trade__out_trade_no")
    def out_trade_no(self, obj: ShippingOrder) -> str:
        return obj.trade.out_trade_no


@admin.register(RobotMessage)
class RobotMessageAdmin(ReadOnlyAdmin):
    list_display = ("received", "key", "msgtype", "content")
    list_filter = ("msgtype",)
    exact_search_fields = ("key",)

    @admin.display(description="收到时间", ordering="received_at")
    def received(self, obj: RobotMessage) -> str:
        return when(obj.received_at)

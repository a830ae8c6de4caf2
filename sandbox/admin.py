from django.contrib import admin

from sandbox.models import Attempt, AuthCode, Delivery, Fault, Refund, Trade
from wxrecharge.admin import ReadOnlyAdmin


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = ("out_refund_no", "refund_id", "refund_fee", "state", "settle_at", "success_time", "created_at")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("out_trade_no", "state", "total_fee", "trade_type", "openid", "transaction_id", "created_at")
    list_filter = ("state", "trade_type")
    search_fields = ("out_trade_no", "transaction_id", "prepay_id", "openid")
    inlines = [RefundInline]


class AttemptInline(admin.TabularInline):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = ("at", "outcome", "status_code", "answer")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("trade", "kind", "state", "attempts", "next_attempt_at", "created_at")
    list_filter = ("state", "kind")
    list_select_related = ("trade",)
    inlines = [AttemptInline]


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
    list_display = ("out_refund_no", "trade", "refund_fee", "state", "settle_at", "created_at")
    list_filter = ("state",)
    list_select_related = ("trade",)


@admin.register(AuthCode)
class AuthCodeAdmin(ReadOnlyAdmin):
    list_display = ("kind", "appid", "openid", "expires_at", "used_at")
    exclude = ("code",)


@admin.register(Fault)
class FaultAdmin(admin.ModelAdmin):
    list_display = ("__str__", "drop_notifies", "duplicate_notifies", "notify_delay_seconds", "corrupt_signature",
                    "report_total_fee", "systemerror_endpoints", "end_state")

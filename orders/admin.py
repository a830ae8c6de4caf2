from django.contrib import admin

from orders.models import LedgerEntry, RechargeOrder
from wxrecharge.admin import ReadOnlyAdmin


@admin.register(RechargeOrder)
class RechargeOrderAdmin(admin.ModelAdmin):
    list_display = ("out_trade_no", "user", "amount_display", "status", "channel", "created_at", "paid_at")
    list_filter = ("status", "channel", ("created_at", admin.DateFieldListFilter))
    search_fields = ("out_trade_no", "transaction_id", "user__username", "openid")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = ("out_trade_no", "user", "amount_display", "status", "channel", "openid", "prepay_id",
                       "prepay_expires_at", "expires_at", "transaction_id", "paid_at", "refunded_amount", "created_at",
                       "updated_at")
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="金额（元）", ordering="amount")
    def amount_display(self, obj: RechargeOrder) -> str:
        return f"¥{obj.amount_yuan}"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "amount", "balance_after", "order", "reason")
    list_filter = ("kind",)
    search_fields = ("user__username", "order__out_trade_no")
    list_select_related = ("user", "order")

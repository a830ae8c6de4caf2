from django.contrib import admin

from payments.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("received_at", "kind", "out_trade_no", "signature_valid", "outcome", "remote_addr")
    list_filter = ("kind", "outcome", "signature_valid")
    search_fields = ("out_trade_no",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

from django.contrib import admin

from payments.models import Notification
from wxrecharge.admin import ReadOnlyAdmin


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "out_trade_no", "signature_valid", "outcome", "remote_addr")
    list_filter = ("kind", "outcome", "signature_valid")
    search_fields = ("out_trade_no",)

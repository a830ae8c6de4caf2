from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from orders.models import LedgerEntry


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    fk_name = "user"
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "amount", "balance_after", "order", "reason")
    readonly_fields = fields
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "balance_display", "openid", "mp_openid", "is_staff", "date_joined")
    search_fields = ("username", "openid", "mp_openid")
    inlines = [LedgerInline]
    readonly_fields = ("balance_display", "openid", "mp_openid", "last_login", "date_joined")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("微信与余额", {"fields": ("balance_display", "openid", "mp_openid")}),
    )

    @admin.display(description="余额（元）", ordering="balance")
    def balance_display(self, obj: User) -> str:
        return f"¥{obj.balance_yuan}"

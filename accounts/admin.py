from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "balance_display", "openid", "mp_openid", "is_staff", "date_joined")
    search_fields = ("username", "openid", "mp_openid")
    readonly_fields = ("balance_display", "openid", "mp_openid", "last_login", "date_joined")
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("微信与余额", {"fields": ("balance_display", "openid", "mp_openid")}),
    )

    @admin.display(description="余额（元）", ordering="balance")
    def balance_display(self, obj: User) -> str:
        return f"¥{obj.balance_yuan}"

"""Roles (Django's groups) in the admin, and the permission pickers of the role and user forms.

The user admin itself is the books' (orders/user_admin.py): it is about a member's money.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group

# django-otp's device models (their admin pages are unregistered in wxrecharge/admin.py):
# operators enrol and reset second factors through the 两步验证 pages only, so a permission
# on them would give nothing, and they are named in English ("Otp_Totp | TOTP device | …").
HIDDEN_PERMISSION_APPS = ("otp_totp", "otp_static")


class PermissionPicker:
    """A ModelAdmin whose permission pickers leave out HIDDEN_PERMISSION_APPS' permissions."""

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]
        if formfield is not None and db_field.name in ("permissions", "user_permissions"):
            formfield.queryset = formfield.queryset.exclude(content_type__app_label__in=HIDDEN_PERMISSION_APPS)
        return formfield


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(PermissionPicker, DjangoGroupAdmin):
    pass

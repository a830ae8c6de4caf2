from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that only change through the site's own flows (ledger, logs, WeChat's side)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

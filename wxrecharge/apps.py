from django.apps import AppConfig
from django.db.models.signals import post_migrate


class WxrechargeConfig(AppConfig):
    name = "wxrecharge"
    verbose_name = "wxrecharge"

    def ready(self) -> None:
        from wxrecharge import checks  # noqa: F401  (registers the system checks)
        from wxrecharge.permissions import name_default_permissions
        from wxrecharge.roles import sync_roles

        # After django.contrib.auth's create_permissions (auth's ready() connected it first).
        post_migrate.connect(name_default_permissions, dispatch_uid="wxrecharge.permissions.name_default_permissions")
        # The roles (客服, 财务, 管理员) hold their permissions after every migrate (once, on the last app's signal).
        post_migrate.connect(sync_roles, dispatch_uid="wxrecharge.sync_roles")

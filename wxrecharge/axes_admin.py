"""django-axes (login throttling) under Chinese names in the operators' admin.

Installed in place of "axes" in INSTALLED_APPS. The app keeps its label ("axes"), so its
tables, migrations, permissions and admin URLs stay as they are; only the names change:
the heading on the admin's start page here, its pages' names (登录尝试, 登录失败, 登录记录)
and columns in wxrecharge/locale/zh_Hans (axes marks them for translation but ships no
Chinese), and the one column axes leaves unnamed (状态), below.

An operator lifts a lockout by deleting the user's or the address's rows under 登录尝试
(README, "Operators' first steps").
"""

from __future__ import annotations

from axes.apps import AppConfig as AxesAppConfig
from django.contrib import admin


class AxesConfig(AxesAppConfig):
    verbose_name = "登录保护"

    def ready(self) -> None:
        super().ready()
        # The admin discovered axes' own admin classes before this runs (it is listed first);
        # axes.admin imports models, so it is imported here, not when settings load this module.
        from axes.admin import AccessAttemptAdmin
        from axes.models import AccessAttempt

        class ChineseAccessAttemptAdmin(AccessAttemptAdmin):
            @admin.display(description="状态")
            def status(self, obj: AccessAttempt) -> str:
                return super().status(obj)

        if admin.site.is_registered(AccessAttempt):
            admin.site.unregister(AccessAttempt)
            admin.site.register(AccessAttempt, ChineseAccessAttemptAdmin)

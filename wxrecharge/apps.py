from django.apps import AppConfig


class WxrechargeConfig(AppConfig):
    name = "wxrecharge"
    verbose_name = "wxrecharge"

    def ready(self) -> None:
        from wxrecharge import checks  # noqa: F401  (registers the system checks)

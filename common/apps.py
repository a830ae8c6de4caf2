from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The shared library as an app, for the one table it keeps (request rate limits)."""

    name = "common"
    verbose_name = "通用"

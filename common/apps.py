from django.apps import AppConfig


class CommonConfig(AppConfig):
    """The shared library as an app, for the tables it keeps (request rate limits, the
    background jobs' heartbeats)."""

    name = "common"
    verbose_name = "通用"

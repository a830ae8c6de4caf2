from django.apps import AppConfig


class HealthConfig(AppConfig):
    """The operators' health panel and alerts (docs/operations.md): checks over the books,
    WeChat's answers and the background jobs' heartbeats, shown on the admin's start page and
    sent to a 企业微信 group robot and e-mail."""

    name = "health"
    verbose_name = "健康与告警"

    def ready(self) -> None:
        # The built-in checks register themselves (common.health); the alert watcher runs in
        # the outbox worker's pass, one worker for everything sent from the site.
        from health import alerts, checks  # noqa: F401
        from outbox.delivery import Consumer, register

        register(Consumer(name="health", run=alerts.run))

from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "微信消息"

    def ready(self) -> None:
        # One worker: the outbox's pass makes each event's messages and sends what is due.
        from messaging import compose, health, sending  # noqa: F401  (health registers its checks)
        from outbox.delivery import Consumer, register

        register(Consumer(name="messaging", fan_out=compose.fan_out, run=sending.run_pass))

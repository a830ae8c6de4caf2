from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.signals import request_started


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "微信沙箱"

    def ready(self) -> None:
        from sandbox.checks import check_v3_key_mode

        checks.register(check_v3_key_mode)
        if settings.SANDBOX_NOTIFY_THREAD:
            from sandbox import worker

            request_started.connect(worker.start_on_first_request, dispatch_uid="sandbox-notify-worker")

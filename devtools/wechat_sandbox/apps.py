from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.signals import request_started


class SandboxConfig(AppConfig):
    name = "devtools.wechat_sandbox"
    # The label it had as the top-level `sandbox` app: its tables (sandbox_*), migrations,
    # admin URLs (admin:sandbox_*), templates and static files keep their names.
    label = "sandbox"
    verbose_name = "微信沙箱"

    def ready(self) -> None:
        from devtools.wechat_sandbox.checks import check_v3_key_mode

        checks.register(check_v3_key_mode)
        if settings.SANDBOX_NOTIFY_THREAD:
            from devtools.wechat_sandbox import worker

            request_started.connect(worker.start_on_first_request, dispatch_uid="sandbox-notify-worker")

"""System checks of the sandbox's own settings (devtools/wechat_sandbox/conf.py)."""

from __future__ import annotations

from django.core.checks import Error
from django.core.exceptions import ImproperlyConfigured

from devtools.wechat_sandbox import conf


def check_v3_key_mode(app_configs=None, **kwargs) -> list[Error]:
    try:
        conf.v3_key_mode()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint="public_key（默认）、certificate 或 migration", id="sandbox.E001")]
    return []

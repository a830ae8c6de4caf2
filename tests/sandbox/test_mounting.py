from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import django
django.setup()
from django.apps import apps
from django.conf import settings
from django.urls import Resolver404, resolve
try:
    resolve("/sandbox/pay/unifiedorder")
    print("mounted", settings.WECHAT_SANDBOX)
except Resolver404:
    print("absent", settings.WECHAT_SANDBOX, any(app.label == "sandbox" for app in apps.get_app_configs()))
"""


def run(**env_vars) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "wxrecharge.settings", "DATABASE_URL": "sqlite:///:memory:", **env_vars})
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_the_sandbox_is_mounted_under_its_own_settings():
    assert run(DJANGO_SETTINGS_MODULE="devtools.settings", DJANGO_DEBUG="1") == "mounted True"
    # ... whatever the merchant's own variables say (they win over the sandbox's credentials).
    assert run(DJANGO_SETTINGS_MODULE="devtools.settings", DJANGO_DEBUG="1", WECHAT_MCH_ID="1230000109") == "mounted True"


def test_the_sandbox_is_absent_under_the_production_settings():
    assert run(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x") == "absent False False"
    assert run(DJANGO_DEBUG="1") == "absent False False"
    assert run(DJANGO_DEBUG="1", WECHAT_MCH_ID="1230000109") == "absent False False"


def test_the_variable_does_not_switch_it_on_under_the_production_settings():
    """The settings module decides; the start is refused by wxrecharge.E012 (tests/test_checks.py)."""
    assert run(DJANGO_DEBUG="1", WECHAT_MCH_ID="1230000109", WECHAT_SANDBOX="1") == "absent False False"

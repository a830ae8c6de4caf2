from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import django
django.setup()
from django.conf import settings
from django.urls import Resolver404, resolve
try:
    resolve("/sandbox/pay/unifiedorder")
    print("mounted", settings.WECHAT_SANDBOX)
except Resolver404:
    print("absent", settings.WECHAT_SANDBOX, "sandbox" in settings.INSTALLED_APPS)
"""


def run(**env_vars) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    env.update(DJANGO_SETTINGS_MODULE="wxrecharge.settings", DATABASE_URL="sqlite:///:memory:", **env_vars)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip()


def test_the_sandbox_is_mounted_in_debug_without_a_merchant_id():
    assert run(DJANGO_DEBUG="1") == "mounted True"


def test_the_sandbox_is_absent_in_production_and_with_a_real_merchant():
    assert run(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="x") == "absent False False"
    assert run(DJANGO_DEBUG="1", WECHAT_MCH_ID="1230000109") == "absent False False"


def test_an_explicit_switch_wins():
    assert run(DJANGO_DEBUG="1", WECHAT_MCH_ID="1230000109", WECHAT_SANDBOX="1") == "mounted True"

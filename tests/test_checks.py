from __future__ import annotations

import pytest

from wxrecharge.checks import check_production_configuration

PRODUCTION = {
    "DEBUG": False,
    "SECRET_KEY_FROM_ENV": True,
    "WECHAT_SANDBOX": False,
    "WECHAT_APPID": "wx0123456789abcdef",
    "WECHAT_APP_SECRET": "s" * 32,
    "WECHAT_MCH_ID": "1230000109",
    "WECHAT_API_KEY": "k" * 32,
    "WECHAT_SIGN_TYPE": "MD5",
    "SITE_URL": "https://pay.example.com",
    # Any readable files: the check only asks that refunds have a certificate and key to send.
    "WECHAT_MCH_CERT": __file__,
    "WECHAT_MCH_KEY": __file__,
}


@pytest.fixture(autouse=True)
def reused_connections(monkeypatch):
    """Production reuses database connections (tests/settings.py turns that off for the suite)."""
    from django.conf import settings

    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 600)


def ids(settings, **overrides):
    for name, value in {**PRODUCTION, **overrides}.items():
        setattr(settings, name, value)
    return {message.id: message for message in check_production_configuration()}


def test_a_complete_production_configuration_passes(settings):
    assert ids(settings) == {}


def test_it_refuses_production_without_a_secret_key(settings):
    found = ids(settings, SECRET_KEY_FROM_ENV=False)
    assert set(found) == {"wxrecharge.E001"}
    assert found["wxrecharge.E001"].is_serious()
    assert "DJANGO_SECRET_KEY" in found["wxrecharge.E001"].hint


def test_it_refuses_the_sandbox_with_debug_off(settings):
    found = ids(settings, WECHAT_SANDBOX=True)
    assert set(found) == {"wxrecharge.E002"}
    assert "WECHAT_SANDBOX" in found["wxrecharge.E002"].hint


@pytest.mark.parametrize("missing", ["WECHAT_APPID", "WECHAT_APP_SECRET", "WECHAT_MCH_ID", "WECHAT_API_KEY"])
def test_it_refuses_missing_wechat_credentials_and_names_them(settings, missing):
    found = ids(settings, **{missing: ""})
    assert set(found) == {"wxrecharge.E003"}
    assert missing in found["wxrecharge.E003"].msg
    assert missing in found["wxrecharge.E003"].hint


@pytest.mark.parametrize("overrides", [{"SECRET_KEY_FROM_ENV": False}, {"WECHAT_SANDBOX": True}, {"WECHAT_API_KEY": ""}],
                         ids=["E001", "E002", "E003"])
def test_the_errors_a_developer_meets_locally_name_the_debug_switch(settings, overrides):
    (found,) = ids(settings, **overrides).values()
    assert found.hint.endswith("For local development, run with DJANGO_DEBUG=1 (as `make run` does).")


def test_it_refuses_an_unknown_sign_type(settings):
    found = ids(settings, WECHAT_SIGN_TYPE="SHA1")
    assert set(found) == {"wxrecharge.E004"}


def test_it_warns_about_a_site_url_that_is_not_https(settings):
    found = ids(settings, SITE_URL="http://pay.example.com")
    assert set(found) == {"wxrecharge.W001"}
    assert not found["wxrecharge.W001"].is_serious()
    assert "SITE_URL" in found["wxrecharge.W001"].hint


@pytest.mark.parametrize("name", ["WECHAT_MCH_CERT", "WECHAT_MCH_KEY"])
@pytest.mark.parametrize("value", [None, "/nonexistent/apiclient.pem"])
def test_it_warns_that_refunds_need_a_readable_merchant_certificate_and_key(settings, name, value):
    found = ids(settings, **{name: value})
    assert set(found) == {"wxrecharge.W002"}
    assert name in found["wxrecharge.W002"].msg and not found["wxrecharge.W002"].is_serious()


def test_debug_mode_is_not_held_to_production_rules(settings):
    assert ids(settings, DEBUG=True, SECRET_KEY_FROM_ENV=False, WECHAT_SANDBOX=True, SITE_URL="http://x") == {}


def test_manage_py_check_fails_for_a_production_start_without_secrets(tmp_path):
    import os
    import subprocess
    import sys

    from django.conf import settings as dj

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_"))}
    env.update(DJANGO_DEBUG="0", DJANGO_SETTINGS_MODULE="wxrecharge.settings", DATABASE_URL="sqlite:///:memory:")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=dj.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "wxrecharge.E001" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert "wxrecharge.E003" in result.stderr and "WECHAT_API_KEY" in result.stderr
    assert "run with DJANGO_DEBUG=1" in result.stderr  # what to do on a developer's machine

"""Production database defaults: PostgreSQL connections are reused; SQLite copes with concurrency."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from wxrecharge.checks import check_production_configuration


def settings_of(**env) -> dict:
    """The DATABASES setting that wxrecharge.settings makes from an environment."""
    code = "import json; from wxrecharge import settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    import json

    return json.loads(result.stdout)


def test_postgresql_connections_are_kept_and_health_checked_by_default():
    db = settings_of(DATABASE_URL="postgres://u@db.example:5432/x")
    assert db["CONN_MAX_AGE"] == 600 and db["CONN_HEALTH_CHECKS"] is True


def test_connection_reuse_can_be_set_or_turned_off():
    assert settings_of(DATABASE_URL="postgres://u@db.example:5432/x", DATABASE_CONN_MAX_AGE="0")["CONN_MAX_AGE"] == 0


def test_sqlite_runs_in_wal_with_immediate_transactions_and_waits_for_the_lock():
    options = settings_of(DATABASE_URL="sqlite:////tmp/x.sqlite3")["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE" and options["timeout"] == 20
    assert "journal_mode=WAL" in options["init_command"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_production_warns_when_postgresql_connections_are_not_reused(settings):
    settings.DEBUG = False
    settings.DATABASES = {
        "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0, "OPTIONS": {}}
    }
    found = {m.id: m for m in check_production_configuration()}
    assert "wxrecharge.W003" in found and "DATABASE_CONN_MAX_AGE" in found["wxrecharge.W003"].hint
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 600
    assert "wxrecharge.W003" not in {m.id for m in check_production_configuration()}

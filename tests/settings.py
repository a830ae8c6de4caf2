"""Settings for the test suite: the sandbox's settings (devtools/settings.py: the product's
settings with the WeChat sandbox on).

Set before the settings read the environment; anything already exported (such as
DATABASE_URL for the PostgreSQL run) wins.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
# Tests start notify delivery themselves (tests.helpers.py), on a fast schedule.
os.environ.setdefault("SANDBOX_NOTIFY_THREAD", "0")
os.environ.setdefault("SANDBOX_NOTIFY_TIME_SCALE", "0.01")
# The site talks to the sandbox over real HTTP in tests, as it would to WeChat
# (tests/sandbox/test_transport.py covers the in-process path).
os.environ.setdefault("SANDBOX_IN_PROCESS", "0")

from devtools.settings import *  # noqa: F403

# No alert channel unless a test sets one (the watcher would post to the robot from every worker pass).
ALERT_WECOM_WEBHOOK = os.environ.get("ALERT_WECOM_WEBHOOK", "")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
# Serve static files from the finders, as under runserver: no collectstatic in tests.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# SQLite: a file rather than memory, so that threads (the live server, notify delivery)
# share one test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}  # noqa: F405
    # A throwaway database need not wait for the disk at each commit.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA synchronous=OFF"  # noqa: F405
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # Nor need PostgreSQL wait for its log to reach the disk at each commit (this session only).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405

# Threads of the live server and of notify delivery must not keep connections open past a
# test: PostgreSQL refuses to drop a test database that still has sessions.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# The suite signs operators in with force_login (no second factor); tests/admin/test_two_factor.py
# turns the requirement back on and proves it.
OPERATOR_2FA_REQUIRED = False

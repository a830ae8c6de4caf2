"""System checks that refuse a dangerous production configuration.

They run for every management command and, through wsgi.py, before gunicorn serves a
request, so a production start with debug off fails loudly and names the variable to set.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

REQUIRED_WECHAT_SETTINGS = ("WECHAT_APPID", "WECHAT_APP_SECRET", "WECHAT_MCH_ID", "WECHAT_API_KEY")
# An ad-hoc `manage.py createsuperuser` on a developer's machine meets these checks too.
LOCAL_HINT = " For local development, run with DJANGO_DEBUG=1 (as `make run` does)."


def _readable(path: str | None) -> bool:
    try:
        with open(path or "", "rb"):
            return True
    except OSError:
        return False


@register()
def check_production_configuration(app_configs=None, **kwargs):
    if settings.DEBUG:
        return []
    messages = []
    if not settings.SECRET_KEY_FROM_ENV:
        messages.append(
            Error(
                "DJANGO_SECRET_KEY is not set.",
                hint="Set DJANGO_SECRET_KEY to a long random value (debug is off)." + LOCAL_HINT,
                id="wxrecharge.E001",
            )
        )
    if settings.WECHAT_SANDBOX:
        messages.append(
            Error(
                "The WeChat sandbox is on while debug is off.",
                hint="Set WECHAT_SANDBOX=0 and the real WeChat credentials in production." + LOCAL_HINT,
                id="wxrecharge.E002",
            )
        )
    else:
        missing = [name for name in REQUIRED_WECHAT_SETTINGS if not getattr(settings, name)]
        if missing:
            messages.append(
                Error(
                    "WeChat credentials are missing: " + ", ".join(missing) + ".",
                    hint="Set " + ", ".join(missing) + " from the 公众号 and merchant platforms." + LOCAL_HINT,
                    id="wxrecharge.E003",
                )
            )
    if not settings.WECHAT_SANDBOX:
        unreadable = [name for name in ("WECHAT_MCH_CERT", "WECHAT_MCH_KEY") if not _readable(getattr(settings, name))]
        if unreadable:
            messages.append(
                Warning(
                    "Refunds cannot be sent: " + ", ".join(unreadable) + " is not set to a readable file.",
                    hint="WeChat Pay's secapi/pay/refund needs the merchant API certificate (apiclient_cert.pem) "
                    "and its key (apiclient_key.pem), downloaded from the merchant platform "
                    "(账户中心 → API安全); set WECHAT_MCH_CERT and WECHAT_MCH_KEY to their paths.",
                    id="wxrecharge.W002",
                )
            )
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3" and not database.get("CONN_MAX_AGE") and not (
        database.get("OPTIONS", {}).get("pool")
    ):
        messages.append(
            Warning(
                "Database connections are opened for every request (DATABASE_CONN_MAX_AGE=0, no pool).",
                hint="Unset DATABASE_CONN_MAX_AGE (default 600 seconds) so that each worker reuses its connection.",
                id="wxrecharge.W003",
            )
        )
    if settings.WECHAT_SIGN_TYPE not in ("MD5", "HMAC-SHA256"):
        messages.append(
            Error(
                f"WECHAT_SIGN_TYPE is {settings.WECHAT_SIGN_TYPE!r}.",
                hint="Set WECHAT_SIGN_TYPE to MD5 or HMAC-SHA256.",
                id="wxrecharge.E004",
            )
        )
    if not settings.SITE_URL.startswith("https://"):
        messages.append(
            Warning(
                f"SITE_URL is {settings.SITE_URL!r}, not https.",
                hint="Set SITE_URL to the public https address: WeChat Pay notifies and "
                "网页授权 redirects are built from it.",
                id="wxrecharge.W001",
            )
        )
    return messages

"""Settings for wxrecharge, read from the environment (and a `.env` file when present).

Every variable is listed in README.md and docs/product.md#2-configuration. Values that must be right in
production have no working default there: `wxrecharge/checks.py` refuses to start without
them.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from common.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
# Variables already in the environment win over the file.
Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# A missing secret is reported by the wxrecharge.E001 check rather than by a crash here,
# so that `manage.py check` can say which variable to set.
SECRET_KEY_FROM_ENV = bool(env.str("DJANGO_SECRET_KEY", default=""))
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or "dev-only-insecure-secret-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The site's name as WeChat's H5 pay is told it (scene_info's wap_name / app_name).
SITE_NAME = env.str("SITE_NAME", default="余额充值")
# H5 pay (a phone's browser outside WeChat) is granted by WeChat to some merchants only: turn
# it on once WeChat has; off, phones pay by scanning a QR code (Native) (docs/paying.md).
WECHAT_H5_PAY = env.bool("WECHAT_H5_PAY", default=False)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

# --- WeChat -------------------------------------------------------------------------
# The WeChat sandbox (docs/product.md#7-the-sandbox) is a development tool outside the
# product: it is on exactly when DJANGO_SETTINGS_MODULE=devtools.settings (`make run`, the
# tests), which sets this to True and brings the sandbox's app, URLs, credentials and base
# URLs. These settings never import it: here it is always off.
WECHAT_SANDBOX = False
# The variable WECHAT_SANDBOX no longer switches it. It is still read (strictly, as every
# yes/no variable) so that one saying the opposite of the settings module in use refuses
# the start (wxrecharge.E012) instead of being ignored.
WECHAT_SANDBOX_VARIABLE = env.bool("WECHAT_SANDBOX", default=None)


def _credential(name: str) -> str:
    return env.str(name, default="")


WECHAT_APPID = _credential("WECHAT_APPID")
WECHAT_APP_SECRET = _credential("WECHAT_APP_SECRET")
WECHAT_MINIPROGRAM_APPID = _credential("WECHAT_MINIPROGRAM_APPID")
WECHAT_MINIPROGRAM_SECRET = _credential("WECHAT_MINIPROGRAM_SECRET")
WECHAT_MCH_ID = _credential("WECHAT_MCH_ID")
WECHAT_API_KEY = _credential("WECHAT_API_KEY")
WECHAT_SIGN_TYPE = env.str("WECHAT_SIGN_TYPE", default="MD5")

# WeChat Pay API version (docs/wechat-pay-v2.md, docs/wechat-pay-v3.md): every flow goes
# through the provider this names (payments/providers/: v2 wechat_v2, v3 wechat_v3).
WECHAT_PAY_API = env.str("WECHAT_PAY_API", default="")
# v3 credentials. Without WECHAT_PAY_PUBLIC_KEY the merchant is in platform-certificate
# mode: certificates are downloaded from /v3/certificates.
WECHAT_MCH_PRIVATE_KEY = _credential("WECHAT_MCH_PRIVATE_KEY")
WECHAT_MCH_CERT_SERIAL = _credential("WECHAT_MCH_CERT_SERIAL")
WECHAT_APIV3_KEY = _credential("WECHAT_APIV3_KEY")
# WECHAT_PAY_PUBLIC_KEY=none: no public key (under the sandbox: platform-certificate mode).
WECHAT_PAY_PUBLIC_KEY = "" if env.str("WECHAT_PAY_PUBLIC_KEY", default="") == "none" else _credential("WECHAT_PAY_PUBLIC_KEY")
WECHAT_PAY_PUBLIC_KEY_ID = (
    "" if env.str("WECHAT_PAY_PUBLIC_KEY", default="") == "none" else _credential("WECHAT_PAY_PUBLIC_KEY_ID")
)
WECHAT_MCH_CERT = env.str("WECHAT_MCH_CERT", default="") or None
WECHAT_MCH_KEY = env.str("WECHAT_MCH_KEY", default="") or None
# Unset base URLs mean WeChat's own. A base URL may contain {SITE_URL}, replaced at call
# time by the SITE_URL setting (common/wechat.py): devtools/settings.py sets them to
# "{SITE_URL}/sandbox/" (and "{SITE_URL}/sandbox/connect/"), which follow the site's address.
WECHAT_PAY_BASE_URL = env.str("WECHAT_PAY_BASE_URL", default="") or None
WECHAT_OPEN_BASE_URL = env.str("WECHAT_OPEN_BASE_URL", default="") or None
WECHAT_API_BASE_URL = env.str("WECHAT_API_BASE_URL", default="") or None
WECHAT_HTTP_TIMEOUT = env.float("WECHAT_HTTP_TIMEOUT", default=10.0)
# A function given the requests session of every WeChat client (dotted path); the sandbox's
# settings set its in-process transport here (devtools/wechat_sandbox/transport.py).
WECHAT_SESSION_HOOK = ""

RECHARGE_MIN_FEN = env.int("RECHARGE_MIN_FEN", default=1)
RECHARGE_MAX_FEN = env.int("RECHARGE_MAX_FEN", default=500000)
# A balance may not go over this by recharging (the 单用途商业预付卡 rules cap a registered card
# at ¥5,000): an order that would, counting the orders still payable, is refused before it is
# placed (docs/product.md#the-balance-cap).
BALANCE_CAP_FEN = env.int("BALANCE_CAP_FEN", default=500000)
# A member's refund request for recharges this recent that nothing was spent from is approved
# by itself (docs/stored-value.md#a-members-refund-request); 0 turns that off.
REFUND_SELF_SERVICE_DAYS = env.int("REFUND_SELF_SERVICE_DAYS", default=7)
# Members are told (event bonus.expiring: a WeChat message, a webhook) this many days before
# their bonus expires.
BONUS_REMINDER_DAYS = env.int("BONUS_REMINDER_DAYS", default=3)
# Messages to users (docs/messages.md): each WeChat call's timeout; whether each mini-program
# payment's shipping record is uploaded to WeChat's 发货信息管理 (on: WeChat holds the funds of
# mini-program payments without one, once the mini program has the service); and which version
# of the mini program a subscribe message opens (formal, trial or developer).
WECHAT_MESSAGE_TIMEOUT_SECONDS = env.float("WECHAT_MESSAGE_TIMEOUT_SECONDS", default=5.0)
WECHAT_SHIPPING_UPLOAD = env.bool("WECHAT_SHIPPING_UPLOAD", default=True)
MINIPROGRAM_STATE = env.str("MINIPROGRAM_STATE", default="formal")
if MINIPROGRAM_STATE not in ("formal", "trial", "developer"):
    raise ImproperlyConfigured("MINIPROGRAM_STATE must be formal, trial or developer")
RECHARGE_PRESETS = env.list("RECHARGE_PRESETS", default=["10", "30", "50", "100", "200", "500"])
RECHARGE_ORDER_TTL_MINUTES = env.int("RECHARGE_ORDER_TTL_MINUTES", default=30)
# A user may have at most this many unpaid orders that can still be paid.
RECHARGE_MAX_OPEN_ORDERS = env.int("RECHARGE_MAX_OPEN_ORDERS", default=5)
# Orders placed (or paid again with 继续支付: each asks WeChat) per minute, per user and per
# client address; a campus or an office behind one address may need a higher second figure.
RECHARGE_ORDERS_PER_MINUTE_PER_USER = env.int("RECHARGE_ORDERS_PER_MINUTE_PER_USER", default=10)
# The merchant API (/api/v1/, docs/merchant-api.md): calls per minute per API client.
MERCHANT_API_REQUESTS_PER_MINUTE = env.int("MERCHANT_API_REQUESTS_PER_MINUTE", default=600)
# Webhooks to the merchant (docs/webhooks.md): each POST's connect and read timeout, and
# whether an endpoint may be plain http or a private, loopback or link-local address (only
# for development: the sandbox's receiver is on this same machine).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS = env.int("RECHARGE_ORDERS_PER_MINUTE_PER_ADDRESS", default=60)
# How users reach the merchant's support (客服), shown wherever a page sends them there;
# none set: the pages say nothing of support rather than point nowhere.
SUPPORT_PHONE = env.str("SUPPORT_PHONE", default="")
SUPPORT_WECHAT = env.str("SUPPORT_WECHAT", default="")
SUPPORT_URL = env.str("SUPPORT_URL", default="")
# Rejected notifies (bad signature, bad XML) are deleted after this many days.
NOTIFY_LOG_RETENTION_DAYS = env.int("NOTIFY_LOG_RETENTION_DAYS", default=90)
# Days the merchant API's call records and the webhook events delivered (with their attempts)
# are kept; sweep_orders purges older ones (common/housekeeping.py).
API_LOG_RETENTION_DAYS = env.int("API_LOG_RETENTION_DAYS", default=90)
WEBHOOK_LOG_RETENTION_DAYS = env.int("WEBHOOK_LOG_RETENTION_DAYS", default=90)

# --- Operators' alerts (health/, docs/operations.md) ----------------------------------
# A 企业微信 group robot's webhook URL (…/cgi-bin/webhook/send?key=…; the key is a secret)
# and/or e-mail to ADMINS ("张三:ops@example.com,李四:dev@example.com") through EMAIL_URL.
# Each kind of alert goes out at most once per ALERT_INTERVAL_MINUTES.
ALERT_WECOM_WEBHOOK = env.str("ALERT_WECOM_WEBHOOK", default="")
ALERT_INTERVAL_MINUTES = env.int("ALERT_INTERVAL_MINUTES", default=15)


def _admins(value: list[str]) -> list[tuple[str, str]]:
    """ADMINS from "name:address" items (a bare address names itself)."""
    admins = []
    for item in value:
        name, _, address = item.rpartition(":")
        if "@" not in address:
            raise ImproperlyConfigured(f"ADMINS: {item!r} is not name:address (an e-mail address)")
        admins.append((name.strip() or address.strip(), address.strip()))
    return admins


ADMINS = _admins(env.list("ADMINS", default=[]))
# E-mail (alerts to ADMINS): e.g. smtp+ssl://user:password@smtp.example.com:465; debug prints it.
globals().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25"))
SERVER_EMAIL = env.str("SERVER_EMAIL", default="wxrecharge@localhost")
EMAIL_SUBJECT_PREFIX = "[wxrecharge] "
EMAIL_TIMEOUT = 5

# --- Django ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "wxrecharge.admin.AdminConfig",  # django.contrib.admin with SiteAdmin (the start page figures)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "wxrecharge.axes_admin.AxesConfig",  # django-axes, named 登录保护 in the admin
    # Operators' second factor (accounts/two_factor.py): an authenticator app, and recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "wxrecharge",
    "common",
    "audit",
    "outbox",
    "accounts",
    "offers",
    "orders",
    "payments",
    "reconciliation",
    "wallet",
    "messaging",
    "health",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "wxrecharge.csp.ContentSecurityPolicyMiddleware",
    # WeChat Pay's notifies skip the rest (payments/middleware.py); served by the WSGI
    # application's own door (wxrecharge/wsgi.py), they pass exactly the middleware above.
    "payments.middleware.NotifyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "wxrecharge.middleware.RejectNulMiddleware",
    # So does the merchant API (wallet/middleware.py), once a NUL has been refused.
    "wallet.middleware.MerchantApiMiddleware",
    "wxrecharge.middleware.JsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): has this session passed the second factor (django-otp)?
    "django_otp.middleware.OTPMiddleware",
    # The request, for the audit log's signals (permission changes carry none).
    "audit.signals.CurrentRequest",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "wxrecharge.urls"
WSGI_APPLICATION = "wxrecharge.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wxrecharge.context_processors.site",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///db.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _name = Path(DATABASES["default"]["NAME"])
    if not _name.is_absolute() and str(_name) != ":memory:":
        DATABASES["default"]["NAME"] = str(BASE_DIR / _name)
    # Concurrent requests on the embedded database: WAL lets readers run beside the writer,
    # BEGIN IMMEDIATE takes the write lock at the start of a transaction (so two writers
    # queue instead of failing half-way with "database is locked"), and a writer waits up
    # to 20 s for it (an outside audit measured, under 8 concurrent notify senders: 46-62% FAIL
    # without these, none with them, and 2.3 times the throughput).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # A connection per request costs a PostgreSQL backend start each time (an outside
    # measurement: 772 -> 140 tps). Each worker keeps its connection for
    # DATABASE_CONN_MAX_AGE seconds and checks it is alive before reusing it after an
    # error or a restart of the database. 0 turns reuse off (wxrecharge.W003 says so).
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "accounts.validators.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes, in the database so every app instance agrees; accounts/throttle.py):
# after AXES_FAILURE_LIMIT failures for one name (from anywhere, or from one address), sign-in
# to that name is refused for AXES_COOLOFF_TIME. An address alone is refused only after
# LOGIN_ADDRESS_FAILURE_LIMIT failures: a carrier NAT puts thousands of people behind one
# address, and one person's typos must not lock the others out.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=50)
# ... and from this many failures for a name on, each attempt waits 1, 2, 4… seconds.
LOGIN_SLOWDOWN_AFTER = env.int("LOGIN_SLOWDOWN_AFTER", default=2)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", ["username", "ip_address"], "ip_address"]
AXES_HANDLER = "accounts.throttle.LoginAttemptHandler"
AXES_RESET_ON_SUCCESS = True
# Tries during a lockout neither count nor prolong it, so the wait the page names holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "accounts.views.locked_out"
AXES_VERBOSE = False
# Reverse proxies in front of the app that append the address they saw to X-Forwarded-For
# (one nginx or load balancer: 1). 0 ignores the header: without a proxy that writes it,
# every client could name any address and escape its count.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "common.http.client_ip"

# Mini-program bearer tokens (signed with SECRET_KEY) live this long.
MP_TOKEN_TTL_SECONDS = env.int("MP_TOKEN_TTL_SECONDS", default=7 * 24 * 3600)
# Mini-program sign-ins (each a call to WeChat's jscode2session) per minute from one address.
MP_LOGINS_PER_MINUTE_PER_ADDRESS = env.int("MP_LOGINS_PER_MINUTE_PER_ADDRESS", default=60)

# Operators' second factor (docs/operations.md#两步验证): an operator who can move money
# (accounts/operators.py) enters a code from an authenticator app after the password before
# any admin page. Only the test suite turns it off (tests/settings.py), for its signed-in clients.
OPERATOR_2FA_REQUIRED = True
# The name the authenticator app shows beside the operator's username.
OTP_TOTP_ISSUER = f"{SITE_NAME} 运营后台" if SITE_NAME else "wxrecharge 运营后台"

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "/recharge/"
LOGOUT_REDIRECT_URL = "accounts:login"

# Chinese only: no LocaleMiddleware, so a browser's Accept-Language changes nothing.
LANGUAGE_CODE = "zh-hans"
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
# Our Chinese for what Django's zh_Hans leaves in English: the admin's JavaScript catalog
# (/admin/jsi18n/) reads only django.contrib.admin's own files and these.
LOCALE_PATHS = [BASE_DIR / "wxrecharge" / "locale"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # WeUI, installed from npm by `make install` (package.json).
    ("weui", BASE_DIR / "node_modules" / "weui" / "dist" / "style"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- HTTPS hardening: on when the public SITE_URL is https ------------------------------
# (`manage.py check --deploy` is clean with these; wxrecharge.W001 warns about an http
# SITE_URL in production.)
if SITE_URL.startswith("https://"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)

    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# security.W005 / W021 ask for HSTS on every subdomain and for the browsers' preload list.
# Both bind the merchant's whole domain (often shared with other sites) and are hard to
# undo, so they are the operator's decision (the two variables above), not a default.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# Log records without what the format never prints: the caller's file and line (a walk up
# the stack on every record), thread and process names. The logging HOWTO's "Optimization"
# section names these switches; every notify logs a line.
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # wechatpy logs whole requests (with signatures) at DEBUG, and urllib3 each request line
    # (a WeChat API's access_token and a group robot's key are in the URL): keep them quiet.
    # Django's own records go to the one console handler too (not also to Django's default one).
    "loggers": {
        "wechatpy": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# --- pages and errors
# A missing or stale CSRF token: JSON for the pages' fetch calls, a WeUI page for forms.
CSRF_FAILURE_VIEW = "wxrecharge.views.csrf_failure"

"""System checks that refuse a dangerous production configuration.

They run for every management command and, through wsgi.py, before gunicorn serves a
request, so a production start with debug off fails loudly and names the variable to set.
They never quote a key, a key file or a secret: only which variable is wrong and how.
"""

from __future__ import annotations

import functools
import os
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.checks import Error, Warning, register

# Needed under both WeChat Pay APIs; the v3 credentials have checks of their own below.
REQUIRED_WECHAT_SETTINGS = ("WECHAT_APPID", "WECHAT_APP_SECRET", "WECHAT_MCH_ID")
# Under v3 the v2 key is optional (kept, it still verifies v2 notifies of orders placed before a switch).
REQUIRED_WECHAT_V2_SETTINGS = ("WECHAT_API_KEY",)
WECHAT_PAY_APIS = ("v2", "v3")
# An ad-hoc `manage.py createsuperuser` on a developer's machine meets these checks too.
LOCAL_HINT = " For local development, run with DJANGO_DEBUG=1 (as `make run` does)."
API_SECURITY = "the merchant platform (pay.weixin.qq.com → 账户中心 → API安全)"
CERT_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}")
PUBLIC_KEY_ID = re.compile(r"PUB_KEY_ID_[0-9]+")
# Key files are a few KiB; a path pointing at something huge must not be read whole.
MAX_KEY_FILE_BYTES = 64 * 1024
# Names an earlier README told deployers to set, and what replaced them. The old name is read
# by nothing (django-axes defines a setting of that name, unused here: AXES_CLIENT_IP_CALLABLE
# wins over it), so a deployment that kept it would silently lose what it was set for.
RENAMED_SETTINGS = {
    "AXES_IPWARE_PROXY_COUNT": (
        "DJANGO_TRUSTED_PROXY_COUNT",
        "Behind a reverse proxy every client would count as the proxy's one address, and sign-in throttling "
        "would lock everyone out.",
    ),
}


def _readable(path: str | None) -> bool:
    try:
        with open(path or "", "rb"):
            return True
    except OSError:
        return False


def _read_key_file(name: str) -> tuple[bytes | None, str]:
    """The bytes of the file that setting `name` points at, or None and what is wrong.

    The setting's value is never quoted: someone may have pasted the key itself instead of its path.
    """
    path = getattr(settings, name)
    if not path:
        return None, f"{name} is not set."
    if path.lstrip().startswith("-----BEGIN"):
        return None, f"{name} holds a PEM key itself, not the path of its file."
    try:
        with open(path, "rb") as file:
            return file.read(MAX_KEY_FILE_BYTES), ""
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or type(exc).__name__})."


def _not_a_key_because(data: bytes) -> str:
    if b"-----BEGIN CERTIFICATE-----" in data:
        return " (it is a certificate)"
    if b"-----BEGIN" not in data:
        return " (no PEM block in the file)"
    return ""


def _private_key_problem() -> str:
    name = "WECHAT_MCH_PRIVATE_KEY"
    data, problem = _read_key_file(name)
    if data is None:
        return problem
    return _private_key_data_problem(name, data)


@functools.lru_cache(maxsize=8)
def _private_key_data_problem(name: str, data: bytes) -> str:
    """Parsing an RSA private key takes about 40 ms: once per key's contents is enough."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        return f"{name} is an encrypted private key; the site needs it without a password."
    except (ValueError, UnsupportedAlgorithm):
        return f"{name} is not a PEM RSA private key{_not_a_key_because(data)}."
    if not isinstance(key, rsa.RSAPrivateKey):
        return f"{name} is not a PEM RSA private key (it is another kind of key)."
    return ""


def _public_key_problem() -> str:
    name = "WECHAT_PAY_PUBLIC_KEY"
    data, problem = _read_key_file(name)
    if data is None:
        return problem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return f"{name} is not a PEM public key{_not_a_key_because(data)}."
    if not isinstance(key, rsa.RSAPublicKey):
        return f"{name} is not an RSA public key."
    return ""


def _wechat_pay_v3_messages() -> list:
    """WeChat Pay API v3 credentials (docs/wechat-pay-v3.md#1-credentials)."""
    messages = []
    problem = _private_key_problem()
    if problem:
        messages.append(
            Error(
                problem,
                hint="Set WECHAT_MCH_PRIVATE_KEY to the path of the merchant API private key, apiclient_key.pem "
                "(PEM, RSA, no password), made when applying for the API certificate in " + API_SECURITY + " → "
                "申请API证书; the site's user must be able to read it.",
                id="wxrecharge.E006",
            )
        )
    serial = settings.WECHAT_MCH_CERT_SERIAL
    if not serial or not CERT_SERIAL.fullmatch(serial):
        messages.append(
            Error(
                "WECHAT_MCH_CERT_SERIAL is not set."
                if not serial
                else f"WECHAT_MCH_CERT_SERIAL is not 1 to 64 hexadecimal characters ({len(serial)} characters).",
                hint="Set WECHAT_MCH_CERT_SERIAL to the 证书序列号 of the merchant API certificate (40 upper-case hex "
                "characters), shown in " + API_SECURITY + " → API证书, or the digits after serial= of "
                "`openssl x509 -in apiclient_cert.pem -noout -serial`.",
                id="wxrecharge.E007",
            )
        )
    apiv3_key = settings.WECHAT_APIV3_KEY
    if not apiv3_key or len(apiv3_key) != 32 or not apiv3_key.isascii():
        if not apiv3_key:
            problem = "WECHAT_APIV3_KEY is not set."
        elif not apiv3_key.isascii():
            problem = "WECHAT_APIV3_KEY has characters that are not ASCII."
        else:
            problem = f"WECHAT_APIV3_KEY is {len(apiv3_key)} characters long, not 32."
        messages.append(
            Error(
                problem,
                hint="Set WECHAT_APIV3_KEY to the APIv3 key (32 ASCII letters and digits, not the v2 API key) set in "
                + API_SECURITY
                + " → 设置APIv3密钥. Without it WeChat Pay sends no notifies.",
                id="wxrecharge.E008",
            )
        )
    public_key, public_key_id = settings.WECHAT_PAY_PUBLIC_KEY, settings.WECHAT_PAY_PUBLIC_KEY_ID
    public_key_hint = (
        "WECHAT_PAY_PUBLIC_KEY is the path of pub_key.pem and WECHAT_PAY_PUBLIC_KEY_ID its 公钥ID (PUB_KEY_ID_ "
        "followed by digits), both from " + API_SECURITY + " → 微信支付公钥. Leave both unset only in "
        "platform-certificate mode."
    )
    if public_key:
        problem = _public_key_problem()
        if problem:
            messages.append(Error(problem, hint=public_key_hint, id="wxrecharge.E009"))
    if public_key and not public_key_id:
        problem = "WECHAT_PAY_PUBLIC_KEY is set but WECHAT_PAY_PUBLIC_KEY_ID is not."
    elif public_key_id and not public_key:
        problem = "WECHAT_PAY_PUBLIC_KEY_ID is set but WECHAT_PAY_PUBLIC_KEY is not."
    elif public_key_id and not PUBLIC_KEY_ID.fullmatch(public_key_id):
        problem = "WECHAT_PAY_PUBLIC_KEY_ID is not PUB_KEY_ID_ followed by digits."
    else:
        problem = ""
    if problem:
        messages.append(Error(problem, hint=public_key_hint, id="wxrecharge.E010"))
    if not public_key and not public_key_id:
        messages.append(
            Warning(
                "WECHAT_PAY_PUBLIC_KEY is not set: WeChat Pay's answers and notifies are verified with platform "
                "certificates downloaded from /v3/certificates (platform-certificate mode).",
                hint="Merchants onboarded since about October 2024 have no platform certificates (the download fails "
                "for them): set WECHAT_PAY_PUBLIC_KEY to the path of pub_key.pem and WECHAT_PAY_PUBLIC_KEY_ID to its "
                "公钥ID (PUB_KEY_ID_…), from " + API_SECURITY + " → 微信支付公钥. Older merchants with platform "
                "certificates may stay in this mode and switch to the public key later.",
                id="wxrecharge.W004",
            )
        )
    return messages


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
                hint="The sandbox comes with DJANGO_SETTINGS_MODULE=devtools.settings (WECHAT_SANDBOX on): in "
                "production use wxrecharge.settings and the real WeChat credentials." + LOCAL_HINT,
                id="wxrecharge.E002",
            )
        )
    else:
        api = settings.WECHAT_PAY_API
        if api not in WECHAT_PAY_APIS:
            messages.append(
                Error(
                    "WECHAT_PAY_API is not set."
                    if not api
                    # Quoted only when short: a secret pasted into the wrong variable stays out of logs.
                    else f"WECHAT_PAY_API is {api!r}, not v2 or v3."
                    if len(api) <= 8
                    else f"WECHAT_PAY_API is a {len(api)}-character value, not v2 or v3.",
                    hint="Set WECHAT_PAY_API to v3 (WeChat Pay API v3: new merchants get v3 and its keys) or v2 "
                    "(API v2 with the v2 API key, for a deployment that already runs on it)." + LOCAL_HINT,
                    id="wxrecharge.E005",
                )
            )
        required = REQUIRED_WECHAT_SETTINGS + (REQUIRED_WECHAT_V2_SETTINGS if api == "v2" else ())
        missing = [name for name in required if not getattr(settings, name)]
        if missing:
            messages.append(
                Error(
                    "WeChat credentials are missing: " + ", ".join(missing) + ".",
                    hint="Set " + ", ".join(missing) + " from the 公众号 and merchant platforms." + LOCAL_HINT,
                    id="wxrecharge.E003",
                )
            )
        if api == "v3":
            messages.extend(_wechat_pay_v3_messages())
        if api == "v2":
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
    if (
        database["ENGINE"] != "django.db.backends.sqlite3"
        and not database.get("CONN_MAX_AGE")
        and not (database.get("OPTIONS", {}).get("pool"))
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
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        messages.append(
            Warning(
                "WEBHOOK_ALLOW_PRIVATE_ADDRESSES is on while debug is off.",
                hint="It lets webhooks go to plain http and to private, loopback or link-local addresses: for "
                "development only (docs/webhooks.md). Unset it in production.",
                id="wxrecharge.W005",
            )
        )
    if not settings.SITE_URL.startswith("https://"):
        messages.append(
            Warning(
                f"SITE_URL is {settings.SITE_URL!r}, not https.",
                hint="Set SITE_URL to the public https address: WeChat Pay notifies and 网页授权 redirects are built from it.",
                id="wxrecharge.W001",
            )
        )
    return messages


@register()
def check_renamed_settings(app_configs=None, **kwargs):
    """An old name still set, in the environment or in the settings, refuses the start, debug
    or not: nothing reads its value (which is not quoted)."""
    messages = []
    for old, (new, consequence) in RENAMED_SETTINGS.items():
        where = []
        if old in os.environ:  # .env included: settings.py reads it into the environment
            where.append("in the environment")
        if getattr(settings, old, None) is not None:  # django-axes' own default is None
            where.append("in the settings")
        if where:
            messages.append(
                Error(
                    f"{old} is set ({' and '.join(where)}), but it has been renamed {new}: its value is ignored.",
                    hint=f"Set {new} to the same value and remove {old}. {consequence}",
                    id="wxrecharge.E011",
                )
            )
    return messages


@register()
def check_sandbox_variable(app_configs=None, **kwargs):
    """WECHAT_SANDBOX in the environment no longer switches the sandbox (the settings module
    does: devtools.settings brings it, wxrecharge.settings never). A variable saying the
    opposite of the settings in use refuses the start, debug or not, rather than being ignored."""
    asked = getattr(settings, "WECHAT_SANDBOX_VARIABLE", None)
    if asked is None or asked == settings.WECHAT_SANDBOX:
        return []
    return [
        Error(
            f"WECHAT_SANDBOX={int(asked)} is set, but the sandbox is {'off' if asked else 'on'} under these settings: "
            "the variable no longer switches it.",
            hint="The sandbox is on exactly when DJANGO_SETTINGS_MODULE=devtools.settings (as under `make run` and in "
            "the tests) and off under wxrecharge.settings (production). Remove WECHAT_SANDBOX and choose the settings "
            "module.",
            id="wxrecharge.E012",
        )
    ]

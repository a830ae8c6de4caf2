"""The sandbox's own settings, each with its default here: the merchant code never reads them.

- `SANDBOX_V3_KEY_MODE`: which keys WeChat holds for the merchant in API v3
  (docs/wechat-pay-v3.md#1-credentials and #serials-public-key-and-platform-certificates):
  - "public_key" (default): a merchant onboarded since late 2024. Only the 微信支付公钥:
    answers and notifies are signed with it (`Wechatpay-Serial: PUB_KEY_ID_…`) and
    `GET /v3/certificates` is refused.
  - "certificate": an older merchant with platform certificates only; everything is
    signed with the certificate's key and carries its serial.
  - "migration": both. Answers are signed with the public key when the request names
    its PUB_KEY_ID in `Wechatpay-Serial`, else with the certificate; notifies come with
    the public key (the `v3_notify_signature` switch sends a certificate-signed one).
- `SANDBOX_KEYS_DIR` (set by the sandbox's settings, devtools/settings.py): where the
  generated keys live (devtools/wechat_sandbox/keys.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from devtools.wechat_sandbox import keys as sandbox_keys
from devtools.wechat_sandbox import v3sign

PUBLIC_KEY, CERTIFICATE, MIGRATION = "public_key", "certificate", "migration"
KEY_MODES = {
    PUBLIC_KEY: "微信支付公钥（2024 年 10 月后入驻的商户）",
    CERTIFICATE: "平台证书（较早入驻的商户）",
    MIGRATION: "迁移期：平台证书与微信支付公钥并存",
}
DEFAULTS = {"SANDBOX_V3_KEY_MODE": PUBLIC_KEY}


def get(name: str):
    """A sandbox setting, or its default."""
    return getattr(settings, name, DEFAULTS[name])


def v3_key_mode() -> str:
    mode = get("SANDBOX_V3_KEY_MODE")
    if mode not in KEY_MODES:
        raise ImproperlyConfigured(f"SANDBOX_V3_KEY_MODE must be one of {', '.join(KEY_MODES)}, not {mode!r}")
    return mode


def keys_dir() -> str:
    return str(settings.SANDBOX_KEYS_DIR)


@functools.cache
def _load(directory: str) -> v3sign.WeChatKeys:
    return v3sign.WeChatKeys.load(sandbox_keys.ensure(directory))


def v3_keys() -> v3sign.WeChatKeys:
    """The v3 keys of the sandbox, loaded once per process (and per keys directory)."""
    return _load(keys_dir())


# The credentials the sandbox hands the merchant (WeChat's platforms would): fixed test
# values for v2 and the apps, generated keys for v3.
SANDBOX_CREDENTIALS = {
    "WECHAT_APPID": "wx5a9dbox0000000a1",
    "WECHAT_APP_SECRET": "sandbox-app-secret-0000000000000a",
    "WECHAT_MINIPROGRAM_APPID": "wx5a9dbox0000000b2",
    "WECHAT_MINIPROGRAM_SECRET": "sandbox-mp-secret-00000000000000b",
    "WECHAT_MCH_ID": "1900000109",
    "WECHAT_API_KEY": "sandboxkey0123456789abcdefghijklm",
}


def project_settings(env, base_dir: Path) -> dict:
    """What the sandbox's settings (devtools/settings.py) take from it over the product's:
    the sandbox's own settings, read from the environment, and under "credentials" the
    values it hands the merchant, used where the merchant's own are not set."""
    keys_dir = env.str("SANDBOX_KEYS_DIR", default=str(Path(base_dir) / ".sandbox-keys"))
    keys = sandbox_keys.ensure(keys_dir)
    return {
        "SANDBOX_KEYS_DIR": keys_dir,
        "SANDBOX_V3_KEY_MODE": env.str("SANDBOX_V3_KEY_MODE", default=DEFAULTS["SANDBOX_V3_KEY_MODE"]),
        # Notify retries follow WeChat's schedule times this factor (0.01: 15s -> 0.15s).
        "SANDBOX_NOTIFY_TIME_SCALE": env.float("SANDBOX_NOTIFY_TIME_SCALE", default=1.0),
        # Answer the site's own calls to /sandbox/ in process (devtools/wechat_sandbox/transport.py), so a
        # server with one sync worker never waits for itself.
        "SANDBOX_IN_PROCESS": env.bool("SANDBOX_IN_PROCESS", default=True),
        # Deliver notifies from a thread of the web process (no second process needed).
        "SANDBOX_NOTIFY_THREAD": env.bool("SANDBOX_NOTIFY_THREAD", default=True),
        "credentials": {
            **SANDBOX_CREDENTIALS,
            "WECHAT_MCH_PRIVATE_KEY": str(keys.merchant_key),
            "WECHAT_MCH_CERT_SERIAL": keys.merchant_serial,
            "WECHAT_APIV3_KEY": keys.apiv3_key,
            "WECHAT_PAY_PUBLIC_KEY": str(keys.pay_public_key),
            "WECHAT_PAY_PUBLIC_KEY_ID": keys.pay_public_key_id,
            "WECHAT_SESSION_HOOK": "devtools.wechat_sandbox.transport.mount",
        },
    }

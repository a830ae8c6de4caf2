"""Settings for development and the tests: the product's settings plus the WeChat sandbox.

The sandbox (devtools/wechat_sandbox/, docs/product.md#7-the-sandbox) stands in for WeChat
and lives outside the product: it is on exactly when DJANGO_SETTINGS_MODULE is this module
(`make run` sets it; tests/settings.py builds on it). The production settings,
wxrecharge/settings.py, never import it. Over them the sandbox brings:

- its app (label `sandbox`: tables, migrations and admin URLs keep that name), its URLs
  under /sandbox/ (devtools/urls.py) and a logging filter for its protocol answers;
- its own settings (SANDBOX_*, read from the environment by devtools/wechat_sandbox/conf.py);
- the credentials it hands the merchant, as WeChat's platforms would (its v3 keys are
  generated on first start, out of git), each used where the WECHAT_* variable is unset;
- WeChat Pay API v3 unless WECHAT_PAY_API says otherwise;
- the base URLs of WeChat's three hosts: "{SITE_URL}/sandbox/" (and ".../sandbox/connect/"
  for 网页授权). common/wechat.py replaces {SITE_URL} with the SITE_URL setting at call time,
  so they follow the site's address (`make run PORT=…`, a test's live server). A
  WECHAT_*_BASE_URL variable still wins;
- WECHAT_SESSION_HOOK: its in-process transport (devtools/wechat_sandbox/transport.py).

The merchant code knows only the WECHAT_* settings. With debug off the sandbox refuses to
start (wxrecharge.E002).
"""

from devtools.wechat_sandbox import conf as _sandbox_conf
from devtools.wechat_sandbox import template_seeds as _template_seeds
from wxrecharge.settings import *  # noqa: F403
from wxrecharge.settings import (
    BASE_DIR,
    INSTALLED_APPS,
    LOGGING,
    WECHAT_API_BASE_URL,
    WECHAT_OPEN_BASE_URL,
    WECHAT_PAY_BASE_URL,
    env,
)

WECHAT_SANDBOX = True
# The sandbox grants H5 pay (its switch h5_no_auth takes it away, as WeChat may).
WECHAT_H5_PAY = env.bool("WECHAT_H5_PAY", default=True)

_sandbox_settings = _sandbox_conf.project_settings(env, BASE_DIR)
_SANDBOX_CREDENTIALS = _sandbox_settings.pop("credentials")
globals().update(_sandbox_settings)  # SANDBOX_KEYS_DIR, SANDBOX_V3_KEY_MODE, ...


# Each credential: the merchant's own value when its variable is set, else the one the
# sandbox hands out (WECHAT_APPID, WECHAT_MCH_ID, WECHAT_API_KEY, the v3 keys …).
globals().update(
    {name: env.str(name, default="") or value for name, value in _SANDBOX_CREDENTIALS.items() if name.startswith("WECHAT_")}
)
WECHAT_PAY_API = env.str("WECHAT_PAY_API", default="v3")
# WECHAT_PAY_PUBLIC_KEY=none tries the sandbox in platform-certificate mode (no public key).
if env.str("WECHAT_PAY_PUBLIC_KEY", default="") == "none":
    WECHAT_PAY_PUBLIC_KEY = WECHAT_PAY_PUBLIC_KEY_ID = ""
WECHAT_SESSION_HOOK = _SANDBOX_CREDENTIALS["WECHAT_SESSION_HOOK"]

# {SITE_URL} is replaced at call time (common/wechat.py), not here: tests move SITE_URL.
WECHAT_PAY_BASE_URL = WECHAT_PAY_BASE_URL or "{SITE_URL}/sandbox/"
WECHAT_OPEN_BASE_URL = WECHAT_OPEN_BASE_URL or "{SITE_URL}/sandbox/connect/"
WECHAT_API_BASE_URL = WECHAT_API_BASE_URL or "{SITE_URL}/sandbox/"
# Operators' alerts go to the sandbox's stand-in 企业微信 group robot (/sandbox/robot/).
ALERT_WECOM_WEBHOOK = env.str("ALERT_WECOM_WEBHOOK", default="") or "{SITE_URL}/sandbox/cgi-bin/webhook/send?key=sandbox-robot"

INSTALLED_APPS = [*INSTALLED_APPS, "devtools.wechat_sandbox"]

# The sandbox's webhook receiver is this same machine, over http (docs/webhooks.md).
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=True)
ROOT_URLCONF = "devtools.urls"

# The sandbox's 4xx answers are WeChat's protocol, not the site's errors (devtools/wechat_sandbox/logs.py).
LOGGING = {
    **LOGGING,
    "filters": {"sandbox_answers": {"()": "devtools.wechat_sandbox.logs.QuietSandboxAnswers"}},
    "handlers": {
        **LOGGING["handlers"],
        "console": {**LOGGING["handlers"]["console"], "filters": ["sandbox_answers"]},
    },
}

# The templates the sandbox's 公众号 and mini program have added (template_seeds), set up as a
# merchant's operator would in 运营后台 → 消息模板 (`manage.py demo_templates`, run by `make run`):
# each kind's template and what fills its keywords (docs/messages.md#templates).
_KEYWORDS = {
    "recharge": {"character_string1": "{order}", "amount2": "{amount}", "amount3": "{balance}", "time4": "{time}"},
    "refund_succeeded": {"character_string1": "{refund}", "amount2": "{amount}", "amount3": "{balance}", "time4": "{time}"},
    "refund_failed": {"character_string1": "{refund}", "amount2": "{amount}", "phrase3": "已退回余额", "time4": "{time}"},
    "charge": {"thing1": "{store}", "amount2": "{amount}", "amount3": "{balance}", "time4": "{time}"},
    "reversal": {"thing1": "{store}", "amount2": "{amount}", "amount3": "{balance}", "time4": "{time}"},
    "bonus_expiring": {"amount1": "{amount}", "date2": "{expires_on}", "thing3": "{site}"},
}
# The mini program's refund-failed and expiry templates end with a thing3 of their own.
_MP_KEYWORDS = {
    **_KEYWORDS,
    "refund_failed": {
        "character_string1": "{refund}",
        "amount2": "{amount}",
        "thing3": "退款未成功，金额已退回余额",
        "time4": "{time}",
    },
    "bonus_expiring": {"amount1": "{amount}", "date2": "{expires_on}", "thing3": "请在到期前使用"},
}
DEMO_MESSAGE_TEMPLATES = [
    {"channel": channel, "kind": kind, "template_id": seed[0], "title": seed[1], "keywords": keywords[kind]}
    for channel, seeds, keywords in (
        ("official", _template_seeds.OFFICIAL_ACCOUNT, _KEYWORDS),
        ("miniprogram", _template_seeds.MINI_PROGRAM, _MP_KEYWORDS),
    )
    for kind, seed in zip(_KEYWORDS, seeds, strict=True)
]

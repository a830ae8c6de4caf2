"""Where the site reaches WeChat: the base URLs of its three hosts (WeChat's own, unless a
setting names another, such as the sandbox's settings do) and the hook that may take over
the HTTP sessions of every client. Used by the payment interface and by WeChat login alike."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_PAY_BASE_URL = "https://api.mch.weixin.qq.com/"
DEFAULT_OPEN_BASE_URL = "https://open.weixin.qq.com/connect/"
DEFAULT_API_BASE_URL = "https://api.weixin.qq.com/"


def mount_transport(session, hook: str | None = None) -> None:
    """Hand the HTTP session of a WeChat client to `hook` (a dotted path; by default the
    WECHAT_SESSION_HOOK setting), if there is one: the sandbox's in-process transport (the
    merchant code knows only base URLs)."""
    hook = settings.WECHAT_SESSION_HOOK if hook is None else hook
    if hook:
        import_string(hook)(session)


# In a WECHAT_*_BASE_URL setting, replaced by the SITE_URL setting at each call (so that the
# sandbox's "{SITE_URL}/sandbox/" follows a SITE_URL changed at run time, as tests do).
SITE_URL_PLACEHOLDER = "{SITE_URL}"


def _base(setting: str, default: str) -> str:
    url = getattr(settings, setting) or default
    url = url.replace(SITE_URL_PLACEHOLDER, settings.SITE_URL)
    return url if url.endswith("/") else url + "/"


def pay_base_url() -> str:
    return _base("WECHAT_PAY_BASE_URL", DEFAULT_PAY_BASE_URL)


def open_base_url() -> str:
    return _base("WECHAT_OPEN_BASE_URL", DEFAULT_OPEN_BASE_URL)


def api_base_url() -> str:
    return _base("WECHAT_API_BASE_URL", DEFAULT_API_BASE_URL)

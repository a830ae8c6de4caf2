"""Where the site reaches WeChat: the base URLs of its three hosts (settings, or the sandbox's
when it stands in) and the hook that may take over the HTTP sessions of every client.
Used by the payment interface and by WeChat login alike."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_PAY_BASE_URL = "https://api.mch.weixin.qq.com/"
DEFAULT_OPEN_BASE_URL = "https://open.weixin.qq.com/connect/"
DEFAULT_API_BASE_URL = "https://api.weixin.qq.com/"


def mount_transport(session) -> None:
    """Hand the HTTP session of every WeChat client to WECHAT_SESSION_HOOK, if one is set
    (the sandbox's in-process transport: the merchant code knows only base URLs)."""
    if settings.WECHAT_SESSION_HOOK:
        import_string(settings.WECHAT_SESSION_HOOK)(session)


def _base(setting: str, sandbox_path: str, default: str) -> str:
    explicit = getattr(settings, setting)
    if explicit:
        return explicit if explicit.endswith("/") else explicit + "/"
    if settings.WECHAT_SANDBOX:
        return f"{settings.SITE_URL}/sandbox/{sandbox_path}"
    return default


def pay_base_url() -> str:
    return _base("WECHAT_PAY_BASE_URL", "", DEFAULT_PAY_BASE_URL)


def open_base_url() -> str:
    return _base("WECHAT_OPEN_BASE_URL", "connect/", DEFAULT_OPEN_BASE_URL)


def api_base_url() -> str:
    return _base("WECHAT_API_BASE_URL", "", DEFAULT_API_BASE_URL)

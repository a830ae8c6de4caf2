"""Who the sandbox knows: this site's merchant account and its two apps, from settings."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


@dataclass(frozen=True)
class Merchant:
    mch_id: str
    api_key: str
    appids: frozenset[str]
    name: str = "沙箱商户"


def merchant(mch_id: str | None) -> Merchant | None:
    if not mch_id or mch_id != settings.WECHAT_MCH_ID:
        return None
    appids = frozenset(a for a in (settings.WECHAT_APPID, settings.WECHAT_MINIPROGRAM_APPID) if a)
    return Merchant(settings.WECHAT_MCH_ID, settings.WECHAT_API_KEY, appids)


def app_secret(appid: str | None) -> str | None:
    """The secret of a 公众号 or mini program the sandbox knows, else None."""
    secrets = {
        settings.WECHAT_APPID: settings.WECHAT_APP_SECRET,
        settings.WECHAT_MINIPROGRAM_APPID: settings.WECHAT_MINIPROGRAM_SECRET,
    }
    return secrets.get(appid or "") or None


def h5_domain() -> str:
    """The H5 pay domain the merchant registered (商户平台 > 产品中心 > 开发配置): in the sandbox,
    the host (and port) of SITE_URL, as for 网页授权's redirect_uri (devtools/wechat_sandbox/oauth.py)."""
    return urlsplit(settings.SITE_URL).netloc.lower()


def on_h5_domain(url: str) -> bool:
    """Whether an http(s) URL is on the merchant's H5 pay domain, host matched exactly."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == h5_domain()

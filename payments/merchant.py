"""Our merchant account as WeChat Pay knows it: every WECHAT_* value the payment code reads,
in one place. `Merchant.current()` reads them (cheap: attribute reads); providers take the
result, and the registry keeps one provider per distinct configuration, so a change of
settings (a test's, or a new deploy) makes new clients rather than using stale ones."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from common import wechat as hosts


@dataclass(frozen=True)
class Merchant:
    mch_id: str
    appid: str  # the 公众号's
    miniprogram_appid: str
    api: str  # WECHAT_PAY_API: the provider new orders and refunds go through (v2, v3)
    site_url: str  # notify URLs are built from it
    http_timeout: float
    pay_base_url: str
    session_hook: str  # WECHAT_SESSION_HOOK: what takes over the clients' HTTP sessions (the sandbox's transport)
    # API v2
    api_key: str
    sign_type: str
    mch_cert: str | None
    mch_key: str | None
    # API v3
    mch_private_key: str  # a path
    mch_cert_serial: str
    apiv3_key: str
    pay_public_key: str  # a path, "" in platform-certificate mode
    pay_public_key_id: str

    @classmethod
    def current(cls) -> Merchant:
        return cls(
            mch_id=settings.WECHAT_MCH_ID,
            appid=settings.WECHAT_APPID,
            miniprogram_appid=settings.WECHAT_MINIPROGRAM_APPID,
            api=settings.WECHAT_PAY_API,
            site_url=settings.SITE_URL,
            http_timeout=settings.WECHAT_HTTP_TIMEOUT,
            pay_base_url=hosts.pay_base_url(),
            session_hook=settings.WECHAT_SESSION_HOOK,
            api_key=settings.WECHAT_API_KEY,
            sign_type=settings.WECHAT_SIGN_TYPE,
            mch_cert=settings.WECHAT_MCH_CERT,
            mch_key=settings.WECHAT_MCH_KEY,
            mch_private_key=settings.WECHAT_MCH_PRIVATE_KEY,
            mch_cert_serial=settings.WECHAT_MCH_CERT_SERIAL,
            apiv3_key=settings.WECHAT_APIV3_KEY,
            pay_public_key=settings.WECHAT_PAY_PUBLIC_KEY,
            pay_public_key_id=settings.WECHAT_PAY_PUBLIC_KEY_ID,
        )

    @property
    def appids(self) -> tuple[str, str]:
        """Our apps: a notify or an answer for any other is not ours."""
        return self.appid, self.miniprogram_appid

    def appid_for(self, channel: str) -> str:
        return self.miniprogram_appid if channel == "miniprogram" else self.appid

    def __repr__(self) -> str:  # never the keys
        return f"Merchant(mch_id={self.mch_id!r}, api={self.api!r})"

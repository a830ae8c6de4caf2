"""WeChat login, server side: the 公众号's 网页授权 (snsapi_base: the openid, and the unionid
when WeChat gives one) and the mini program's jscode2session (docs/wechat-pay-v2.md, "Login").

Two GETs to WeChat's API host with a requests session of our own (its timeout set, and
handed to common.wechat.mount_transport for the sandbox), configured by `WeChatApps`: the
only place login reads its WECHAT_* settings. The app secrets stay on the server; the
session_key too (never logged: errors quote WeChat's errcode only).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import requests
from django.conf import settings

from common.wechat import api_base_url, mount_transport, open_base_url
from wxproto.errors import WeChatError


@dataclass(frozen=True)
class WeChatApps:
    """Our two WeChat apps as login needs them: the 公众号 and the mini program."""

    appid: str
    app_secret: str
    miniprogram_appid: str
    miniprogram_secret: str
    http_timeout: float
    api_base_url: str
    open_base_url: str
    session_hook: str

    @classmethod
    def current(cls) -> WeChatApps:
        return cls(
            appid=settings.WECHAT_APPID,
            app_secret=settings.WECHAT_APP_SECRET,
            miniprogram_appid=settings.WECHAT_MINIPROGRAM_APPID,
            miniprogram_secret=settings.WECHAT_MINIPROGRAM_SECRET,
            http_timeout=settings.WECHAT_HTTP_TIMEOUT,
            api_base_url=api_base_url(),
            open_base_url=open_base_url(),
            session_hook=settings.WECHAT_SESSION_HOOK,
        )

    def __repr__(self) -> str:  # never the secrets
        return f"WeChatApps(appid={self.appid!r}, miniprogram_appid={self.miniprogram_appid!r})"


def authorize_url(redirect_uri: str, state: str) -> str:
    """Where the browser goes for 网页授权 (scope snsapi_base: no consent screen)."""
    apps = WeChatApps.current()
    query = urlencode(
        {"appid": apps.appid, "redirect_uri": redirect_uri, "response_type": "code", "scope": "snsapi_base", "state": state},
        quote_via=quote,
        safe="",
    )
    return f"{apps.open_base_url}oauth2/authorize?{query}#wechat_redirect"


def _get(apps: WeChatApps, what: str, endpoint: str, params: dict[str, str]) -> dict:
    """GET one of WeChat's login endpoints; its JSON answer, or WeChatError (WeChat's errcode,
    or NETWORK when no usable answer came: a retry may help)."""
    session = requests.Session()
    mount_transport(session, apps.session_hook)
    try:
        with session:
            response = session.get(apps.api_base_url + endpoint, params=params, timeout=apps.http_timeout)
            response.raise_for_status()
            answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise WeChatError(f"{what}: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc
    if not isinstance(answer, dict):
        raise WeChatError(f"{what}: not a JSON object", "NETWORK", retryable=True)
    if answer.get("errcode"):
        raise WeChatError(f"{what}: {answer['errcode']} {answer.get('errmsg', '')}".strip(), str(answer["errcode"]))
    if not isinstance(answer.get("openid"), str) or not answer["openid"]:
        raise WeChatError(f"{what}: no openid in the answer", "NETWORK", retryable=True)
    return answer


def mini_program_session(js_code: str) -> dict[str, str]:
    """code2session: {openid, session_key, unionid when WeChat gives one}. The session_key must
    stay on the server."""
    apps = WeChatApps.current()
    params = {
        "appid": apps.miniprogram_appid,
        "secret": apps.miniprogram_secret,
        "js_code": js_code,
        "grant_type": "authorization_code",
    }
    return _get(apps, "jscode2session", "sns/jscode2session", params)


def oauth_identity(code: str) -> tuple[str, str | None]:
    """Exchange a 网页授权 code for (openid, unionid), server side (the secret stays here). The unionid is there only
    when WeChat gives one (the 公众号 linked to an open-platform account), else None."""
    apps = WeChatApps.current()
    params = {"appid": apps.appid, "secret": apps.app_secret, "code": code, "grant_type": "authorization_code"}
    answer = _get(apps, "oauth", "sns/oauth2/access_token", params)
    return answer["openid"], answer.get("unionid") or None

"""WeChat login, server side: the 公众号's 网页授权 (snsapi_base: the openid, and the unionid
when WeChat gives one) and the mini program's jscode2session, through wechatpy's WeChatOAuth
and WeChatClient (their HTTP session handed to common.wechat.mount_transport;
docs/wechat-pay-v2.md, "Login"). The app secrets stay on the server; the session_key too.
"""

from __future__ import annotations

import requests
from django.conf import settings
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException, WeChatOAuthException
from wechatpy.oauth import WeChatOAuth

from common.wechat import api_base_url, mount_transport, open_base_url
from wxproto.errors import WeChatError


class _OAuth(WeChatOAuth):
    """wechatpy's WeChatOAuth sets no timeout of its own."""

    def _request(self, method, url_or_endpoint, **kwargs):
        kwargs.setdefault("timeout", settings.WECHAT_HTTP_TIMEOUT)
        return super()._request(method, url_or_endpoint, **kwargs)


def oauth(redirect_uri: str, state: str) -> WeChatOAuth:
    client = _OAuth(settings.WECHAT_APPID, settings.WECHAT_APP_SECRET, redirect_uri, "snsapi_base", state)
    client.API_BASE_URL = api_base_url()
    client.OAUTH_BASE_URL = open_base_url()
    mount_transport(client._http)
    return client


def authorize_url(redirect_uri: str, state: str) -> str:
    return oauth(redirect_uri, state).authorize_url


def mini_program_session(js_code: str) -> dict[str, str]:
    """code2session: {openid, session_key}. The session_key must stay on the server."""
    client = WeChatClient(
        settings.WECHAT_MINIPROGRAM_APPID,
        settings.WECHAT_MINIPROGRAM_SECRET,
        access_token="unused-by-jscode2session",
        timeout=settings.WECHAT_HTTP_TIMEOUT,
    )
    client.wxa.API_BASE_URL = api_base_url()
    mount_transport(client._http)
    try:
        return client.wxa.code_to_session(js_code)
    except WeChatClientException as exc:
        raise WeChatError(
            f"jscode2session: {exc.errcode}", str(exc.errcode) if exc.errcode else "NETWORK", retryable=exc.errcode is None
        ) from exc
    except requests.RequestException as exc:
        raise WeChatError(f"jscode2session: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc


def oauth_identity(code: str) -> tuple[str, str | None]:
    """Exchange a 网页授权 code for (openid, unionid), server side (the secret stays here). The unionid is there only
    when WeChat gives one (the 公众号 linked to an open-platform account), else None."""
    try:
        answer = oauth("", "").fetch_access_token(code)
    except WeChatOAuthException as exc:
        raise WeChatError(
            f"oauth: {exc.errcode} {exc.errmsg}", str(exc.errcode) if exc.errcode else "NETWORK", retryable=exc.errcode is None
        ) from exc
    except requests.RequestException as exc:
        raise WeChatError(f"oauth: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc
    return answer["openid"], answer.get("unionid") or None

"""The access_token of each of our WeChat apps, shared by every process and server through the
database (accounts.models.AccessToken; docs/wechat-pay-v2.md, "access_token").

- It comes from WeChat's `stable_token` endpoint: asked again while a token is valid, it gives
  the same token, so one server's refresh never cuts off the token another holds (the old
  `token` endpoint makes a new one each time and the previous one dies five minutes later).
- One process refreshes at a time: it claims the row (a compare-and-set on
  `refreshing_until`, which lapses if the process dies) and asks WeChat outside any
  transaction; the others keep using the token while it is still valid, or wait for the new one.
- A token is refreshed five minutes before it expires, and at once when WeChat answers
  40001/42001 for it (`call_with_token`): once, however many callers saw it fail.
- The token is never logged: errors name WeChat's errcode only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import requests
from django.db.models import Q
from django.utils import timezone

from accounts.models import AccessToken
from accounts.wechat_login import WeChatApps
from common.wechat import mount_transport
from wxproto.errors import WeChatError

logger = logging.getLogger(__name__)

OFFICIAL, MINIPROGRAM = "official", "miniprogram"
# Refreshed this long before WeChat's expiry: a call made just before it never carries a dying token.
REFRESH_BEFORE = timedelta(minutes=5)
# A token refreshed this recently is not asked for again before it expires (unless refused).
ASK_AGAIN_AFTER = timedelta(minutes=1)
# How long a refresh may take before another process may claim it.
CLAIM_FOR = timedelta(seconds=30)
# How long a caller waits for another process's refresh, when it holds no valid token itself.
WAIT_FOR = 10.0
# WeChat's errcodes for a token it no longer takes: invalid (or not the latest), expired.
TOKEN_REFUSED = {40001, 42001}


def _credentials(app: str) -> tuple[WeChatApps, str, str]:
    apps = WeChatApps.current()
    if app == MINIPROGRAM:
        return apps, apps.miniprogram_appid, apps.miniprogram_secret
    return apps, apps.appid, apps.app_secret


def access_token(app: str = OFFICIAL, *, stale: str = "") -> str:
    """A valid access_token of the app (OFFICIAL: the 公众号, MINIPROGRAM), from the shared
    row, refreshed when it is due or when `stale` (a token WeChat just refused) is still the
    row's. Raises WeChatError when none can be had."""
    apps, appid, secret = _credentials(app)
    AccessToken.objects.get_or_create(appid=appid)
    deadline = time.monotonic() + WAIT_FOR
    while True:
        row = AccessToken.objects.get(appid=appid)
        now = timezone.now()
        valid = bool(row.token) and row.expires_at is not None and row.expires_at > now and row.token != stale
        due = row.expires_at is None or row.expires_at - REFRESH_BEFORE <= now
        # WeChat may answer a token's last minutes with the same token: asked a minute ago, it is
        # not asked again before it expires.
        asked_lately = row.refreshed_at is not None and row.refreshed_at > now - ASK_AGAIN_AFTER
        if valid and (not due or asked_lately):
            return row.token
        # Due (or refused): claim the refresh, only while the row still holds what we read.
        claimed = (
            AccessToken.objects.filter(appid=appid, token=row.token)
            .filter(Q(refreshing_until__isnull=True) | Q(refreshing_until__lt=now))
            .update(refreshing_until=now + CLAIM_FOR)
        )
        if claimed:
            return _refresh(apps, appid, secret, force=bool(stale) and row.token == stale, fallback=row.token if valid else "")
        if valid:
            return row.token  # another process is refreshing it; this one still works meanwhile
        if time.monotonic() > deadline:
            raise WeChatError("access_token: another process is still refreshing it", "BUSY", retryable=True)
        time.sleep(0.2)


def _refresh(apps: WeChatApps, appid: str, secret: str, *, force: bool, fallback: str) -> str:
    """Ask WeChat (stable_token) with the claim held, and keep the answer for everyone."""
    try:
        token, expires_in = _stable_token(apps, appid, secret, force)
    except WeChatError:
        AccessToken.objects.filter(appid=appid).update(refreshing_until=None)
        if fallback:
            logger.warning("access_token of %s not refreshed; the current one is still valid", appid)
            return fallback
        raise
    now = timezone.now()
    AccessToken.objects.filter(appid=appid).update(
        token=token, expires_at=now + timedelta(seconds=expires_in), refreshing_until=None, refreshed_at=now
    )
    logger.info("access_token of %s refreshed (valid %s s)", appid, expires_in)
    return token


def post_json(path: str, body: dict, *, token: str = "", timeout: float | None = None) -> dict:
    """POST `body` as JSON to one of WeChat's APIs (api.weixin.qq.com/`path`, with the
    access_token when given) and answer its JSON object, whatever errcode it holds. No usable
    answer (the network, an HTTP error, not JSON): WeChatError NETWORK, to retry; only the
    exception's class is kept, since its text may carry the URL, and so the token."""
    apps = WeChatApps.current()
    session = requests.Session()
    mount_transport(session, apps.session_hook)
    params = {"access_token": token} if token else None
    try:
        with session:
            response = session.post(apps.api_base_url + path, params=params, json=body, timeout=timeout or apps.http_timeout)
            response.raise_for_status()
            answer = response.json()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise WeChatError(f"{path}: HTTP {status}", "NETWORK", retryable=True) from None
    except (requests.RequestException, ValueError) as exc:
        raise WeChatError(f"{path}: {exc.__class__.__name__}", "NETWORK", retryable=True) from None
    if not isinstance(answer, dict):
        raise WeChatError(f"{path}: not a JSON object", "NETWORK", retryable=True)
    return answer


def _stable_token(apps: WeChatApps, appid: str, secret: str, force: bool) -> tuple[str, int]:
    body = {"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force}
    answer = post_json("cgi-bin/stable_token", body)
    if answer.get("errcode"):
        code = answer["errcode"]
        raise WeChatError(f"stable_token: {code} {answer.get('errmsg', '')}".strip(), str(code), retryable=code == -1)
    token, expires_in = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not token or isinstance(expires_in, bool) or not isinstance(expires_in, int):
        raise WeChatError("stable_token: no token in the answer", "NETWORK", retryable=True)
    return token, max(0, expires_in)


def call_with_token(call: Callable[[str], dict], app: str = OFFICIAL) -> dict:
    """Call a WeChat API with the app's token (`call(token)` answers WeChat's JSON); when WeChat
    refuses the token (40001, 42001), once more with a refreshed one."""
    token = access_token(app)
    answer = call(token)
    if isinstance(answer, dict) and answer.get("errcode") in TOKEN_REFUSED:
        logger.info("WeChat refused the access_token (%s); refreshing it once", answer.get("errcode"))
        answer = call(access_token(app, stale=token))
    return answer

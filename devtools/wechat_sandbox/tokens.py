"""An app's access_token: stable_token, token, and an API that checks it (get_api_domain_ip).

What WeChat does (docs/wechat-pay-v2.md#53-access_token):
- `POST cgi-bin/stable_token` (JSON). Normal mode answers the app's current token while it has
  more than 5 minutes left, with the seconds it has left; in its last 5 minutes, a new one (the
  old one works until its own expiry). `force_refresh: true` issues a new one (at most 20 a
  Beijing day, else 45009; a second forced refresh within 30s of the last does nothing); the
  token it replaces works 5 more minutes, and any older one stops at once.
- `GET cgi-bin/token` issues a new token at each call; the previous one works 5 more minutes.
  Its tokens and stable_token's are kept apart.
- An API called with a token answers 40001 for a token it does not know or one replaced and
  past its 5 minutes, 42001 for one past its expiry.

Helpers for tests (the product's too): `expire_all`, `count_issued`, `busy_next`.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from devtools.wechat_sandbox.merchants import app_secret
from devtools.wechat_sandbox.models import AccessToken, Fault
from wxproto.beijing import beijing_date, day_bounds

TTL = timedelta(seconds=7200)
RENEW_BEFORE = timedelta(minutes=5)
FORCE_INTERVAL = timedelta(seconds=30)
FORCE_PER_DAY = 20
# What get_api_domain_ip lists (WeChat lists the addresses of api.weixin.qq.com).
API_IPS = ["127.0.0.1"]
_RACE_RETRIES = 5


class TokenError(Exception):
    def __init__(self, errcode: int, errmsg: str):
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg = errcode, errmsg


BUSY = TokenError(-1, "system error")


def _current(appid: str, kind: str) -> AccessToken | None:
    return AccessToken.objects.filter(appid=appid, kind=kind, replaced_at__isnull=True).first()


def _replace(current: AccessToken | None, appid: str, kind: str, now: datetime, forced: bool = False) -> AccessToken | None:
    """A new current token in place of `current` (None: the app has none yet), or None when
    another request replaced it first (compare-and-set, and one current token per app and kind)."""
    try:
        with transaction.atomic():
            if forced:  # the token an earlier forced refresh replaced stops now
                AccessToken.objects.filter(
                    appid=appid,
                    kind=kind,
                    replaced_at__gt=now - AccessToken.REPLACED_GRACE,
                    revoked_at__isnull=True,
                ).update(revoked_at=now)
            if current is not None:
                if not AccessToken.objects.filter(pk=current.pk, replaced_at__isnull=True).update(replaced_at=now):
                    return None
            return AccessToken.objects.create(
                appid=appid,
                kind=kind,
                access_token=secrets.token_urlsafe(96),
                forced=forced,
                issued_at=now,
                expires_at=now + TTL,
            )
    except IntegrityError:
        return None


def _forced_today(appid: str, now: datetime) -> int:
    start, _ = day_bounds(beijing_date(now))
    return AccessToken.objects.filter(appid=appid, kind=AccessToken.STABLE, forced=True, issued_at__gte=start).count()


def stable_token(appid: str, force_refresh: bool = False) -> AccessToken:
    for _ in range(_RACE_RETRIES):
        now = timezone.now()
        current = _current(appid, AccessToken.STABLE)
        if force_refresh:
            if current is not None and current.forced and now - current.issued_at < FORCE_INTERVAL and current.works(now):
                return current
            if _forced_today(appid, now) >= FORCE_PER_DAY:
                raise TokenError(45009, "reach max api daily quota limit")
        elif current is not None and now < current.expires_at - RENEW_BEFORE:
            return current
        made = _replace(current, appid, AccessToken.STABLE, now, forced=force_refresh)
        if made is not None:
            return made
        # Another request issued one first: the next pass answers theirs.
    raise BUSY


def plain_token(appid: str) -> AccessToken:
    for _ in range(_RACE_RETRIES):
        made = _replace(_current(appid, AccessToken.PLAIN), appid, AccessToken.PLAIN, timezone.now())
        if made is not None:
            return made
    raise BUSY


def check(access_token: str) -> AccessToken:
    """The token an API call carries, if it works now; else WeChat's errcode."""
    if not access_token:
        raise TokenError(41001, "access_token missing")
    found = AccessToken.objects.filter(access_token=access_token).first()
    if found is None:
        raise TokenError(40001, "invalid credential, access_token is invalid or not latest")
    if found.works(timezone.now()):
        return found
    if found.expired:
        raise TokenError(42001, "access_token expired")
    raise TokenError(40001, "invalid credential, access_token is invalid or not latest")


def _busy() -> bool:
    """The token_busy switch (global row): True, and one fewer, while it counts."""
    return bool(Fault.objects.filter(out_trade_no="", token_busy__gt=0).update(token_busy=F("token_busy") - 1))


def _authenticate(grant_type, appid, secret) -> None:
    if not appid:
        raise TokenError(41002, "appid missing")
    known = app_secret(appid) if isinstance(appid, str) else None
    if known is None:
        raise TokenError(40013, "invalid appid")
    if not secret:
        raise TokenError(41004, "appsecret missing")
    if not isinstance(secret, str) or not secrets.compare_digest(secret.encode(), known.encode()):
        raise TokenError(40125, "invalid appsecret")
    if grant_type != "client_credential":
        raise TokenError(40002, "invalid grant_type")
    if _busy():
        raise BUSY


def _error(error: TokenError) -> JsonResponse:
    return JsonResponse({"errcode": error.errcode, "errmsg": error.errmsg})


def _answer(token: AccessToken) -> JsonResponse:
    left = round((token.expires_at - timezone.now()).total_seconds())
    return JsonResponse({"access_token": token.access_token, "expires_in": max(left, 0)})


@csrf_exempt
def stable_token_view(request):
    if request.method != "POST":
        return _error(TokenError(43002, "require POST method"))
    try:
        data = json.loads(request.body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return _error(TokenError(47001, "data format error"))
    try:
        _authenticate(data.get("grant_type"), data.get("appid"), data.get("secret"))
        return _answer(stable_token(data["appid"], force_refresh=data.get("force_refresh") is True))
    except TokenError as error:
        return _error(error)


@require_GET
def token_view(request):
    q = request.GET
    try:
        _authenticate(q.get("grant_type"), q.get("appid"), q.get("secret"))
        return _answer(plain_token(q["appid"]))
    except TokenError as error:
        return _error(error)


@require_GET
def get_api_domain_ip(request):
    try:
        check(request.GET.get("access_token", ""))
    except TokenError as error:
        return _error(error)
    return JsonResponse({"ip_list": API_IPS})


# Helpers for tests


def expire_all(appid: str) -> int:
    """Make every token of the app expire now (both kinds): API calls with them answer 42001
    and stable_token issues a new one. How many were still unexpired."""
    now = timezone.now()
    return AccessToken.objects.filter(appid=appid, expires_at__gt=now).update(expires_at=now)


def count_issued(appid: str, kind: str | None = None) -> int:
    """How many tokens the app was issued, by either endpoint (kind=AccessToken.STABLE: by
    stable_token only; AccessToken.PLAIN: by token only)."""
    issued = AccessToken.objects.filter(appid=appid)
    return (issued.filter(kind=kind) if kind else issued).count()


def busy_next(times: int = 1) -> None:
    """The next `times` calls to stable_token or token answer -1 (system error)."""
    Fault.objects.update_or_create(out_trade_no="", defaults={"token_busy": times})

"""WeChat login: 网页授权 (authorize + access_token) and the mini program's jscode2session."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.merchants import app_secret
from devtools.wechat_sandbox.models import AuthCode

BROWSER_COOKIE = "sandbox_wx_user"


def unionid_for(person: str) -> str:
    """One sandbox person's unionid: the same in the 公众号 and the mini program, as WeChat gives
    it when both apps are linked to one open-platform account (a person is a browser, or the
    `user` a test names)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"unionid:{person}".encode(), hashlib.sha256).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def _mint(kind: str, appid: str, openid: str, unionid: str = "", scope: str = "") -> AuthCode:
    """services.mint_code, with the person's unionid carried in the code after a dot: the sandbox's
    AuthCode table has no column for it, and a code means nothing to anyone but the sandbox."""
    code = secrets.token_urlsafe(24) + (f".{unionid}" if unionid else "")
    return AuthCode.objects.create(
        code=code, kind=kind, appid=appid, openid=openid, scope=scope, expires_at=timezone.now() + services.CODE_TTL
    )


def _identity(found: AuthCode) -> dict[str, str]:
    unionid = found.code.partition(".")[2]
    return {"openid": found.openid, **({"unionid": unionid} if unionid else {})}


def _error_page(request, errcode: int, errmsg: str) -> HttpResponse:
    return render(request, "sandbox/oauth_error.html", {"errcode": errcode, "errmsg": errmsg}, status=200)


@require_GET
def authorize(request):
    """Play the WeChat user: redirect back with a single-use code for this browser's openid."""
    q = request.GET
    appid, redirect_uri, state = q.get("appid", ""), q.get("redirect_uri", ""), q.get("state", "")
    if app_secret(appid) is None or appid != settings.WECHAT_APPID:
        return _error_page(request, 10016, "appid 参数错误")
    target = urlsplit(redirect_uri)
    if target.scheme not in ("http", "https") or target.netloc != urlsplit(settings.SITE_URL).netloc:
        return _error_page(request, 10003, "redirect_uri 域名与后台配置不一致")
    if q.get("response_type") != "code":
        return _error_page(request, 10004, "response_type 参数错误")
    if q.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
        return _error_page(request, 10005, "此公众号并没有这些 scope 的权限")
    if len(state.encode()) > 128:
        return _error_page(request, 10009, "state 参数过长")
    browser_id = request.COOKIES.get(BROWSER_COOKIE) or secrets.token_urlsafe(16)
    code = _mint(AuthCode.OAUTH, appid, services.openid_for(appid, browser_id), unionid_for(browser_id), q["scope"])
    separator = "&" if target.query else "?"
    response = HttpResponseRedirect(redirect_uri + separator + urlencode({"code": code.code, "state": state}))
    response.set_cookie(BROWSER_COOKIE, browser_id, max_age=365 * 24 * 3600, httponly=True, samesite="Lax")
    return response


def _error(errcode: int, errmsg: str) -> JsonResponse:
    return JsonResponse({"errcode": errcode, "errmsg": errmsg}, json_dumps_params={"ensure_ascii": False})


def _redeem(kind: str, appid: str, secret: str, code: str, grant_type: str) -> AuthCode | JsonResponse:
    known = app_secret(appid)
    if known is None:
        return _error(40013, "invalid appid")
    if not secret or not secrets.compare_digest(secret.encode(), known.encode()):
        return _error(40125, "invalid appsecret")
    if grant_type != "authorization_code":
        return _error(40002, "invalid grant_type")
    found = AuthCode.objects.filter(code=code, kind=kind, appid=appid).first() if code else None
    if found is None or found.expires_at <= timezone.now():
        return _error(40029, "invalid code")
    # Single use, even when two requests race: only one UPDATE finds it unused.
    if not AuthCode.objects.filter(pk=found.pk, used_at__isnull=True).update(used_at=timezone.now()):
        return _error(40163, "code been used")
    return found


@require_GET
def access_token(request):
    q = request.GET
    found = _redeem(AuthCode.OAUTH, q.get("appid", ""), q.get("secret", ""), q.get("code", ""), q.get("grant_type", ""))
    if isinstance(found, JsonResponse):
        return found
    # WeChat itself names the unionid here only for scope snsapi_userinfo; the sandbox names it for
    # snsapi_base too, so that the site's use of it can be seen working (README, "WeChat identity").
    return JsonResponse(
        {
            "access_token": secrets.token_urlsafe(48),
            "expires_in": 7200,
            "refresh_token": secrets.token_urlsafe(48),
            **_identity(found),
            "scope": found.scope or "snsapi_base",
        }
    )


@require_GET
def jscode2session(request):
    q = request.GET
    found = _redeem(AuthCode.JSCODE, q.get("appid", ""), q.get("secret", ""), q.get("js_code", ""), q.get("grant_type", ""))
    if isinstance(found, JsonResponse):
        return found
    return JsonResponse({**_identity(found), "session_key": base64.b64encode(secrets.token_bytes(16)).decode()})


@csrf_exempt
@require_POST
def login_code(request):
    """Play `wx.login()`: mint a code for the mini program.

    `{"user": "..."}` (or this browser's sandbox cookie) names a person: their mini-program
    openid, and the unionid their 公众号 openid shares. `{"openid": "..."}` names an openid the
    sandbox knows no person for: no unionid. With neither, a new person.
    """
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return JsonResponse({"errcode": 40001, "errmsg": "body must be a JSON object"}, status=400)
    appid = settings.WECHAT_MINIPROGRAM_APPID
    person = data.get("user")
    if person is not None and (not isinstance(person, str) or not 1 <= len(person) <= 128):
        return JsonResponse({"errcode": 40003, "errmsg": "invalid user"}, status=400)
    openid, unionid = data.get("openid") or None, ""
    if openid is None:
        person = person or request.COOKIES.get(BROWSER_COOKIE) or secrets.token_urlsafe(16)
        openid, unionid = services.openid_for(appid, person), unionid_for(person)
    if not isinstance(openid, str) or not 1 <= len(openid) <= 128:
        return JsonResponse({"errcode": 40003, "errmsg": "invalid openid"}, status=400)
    code = _mint(AuthCode.JSCODE, appid, openid, unionid)
    return JsonResponse({"code": code.code, "openid": openid, **({"unionid": unionid} if unionid else {})})

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts import throttle
from accounts.binding import FAILED_KEY, SIGNED_OUT_KEY, bind_pending_openid, pending_identity
from accounts.forms import LoginForm, RegisterForm
from common.http import in_wechat


def safe_next(request, default: str = settings.LOGIN_REDIRECT_URL) -> str:
    """The `next` of the request when it stays on this site, otherwise `default`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def wechat_signin_url(next_path: str) -> str:
    """网页授权 started from the sign-in page: a bound WeChat signs its owner in, an unbound one
    comes back to the sign-in page (`signin` tells the callback so, also when it fails)."""
    return reverse("accounts:wechat_authorize") + "?" + urlencode({"next": next_path, "signin": "1"})


def _wechat_context(request) -> dict:
    pending = pending_identity(request) is not None
    return {
        "wechat_pending": pending,
        "wechat_signin_url": wechat_signin_url(safe_next(request)) if in_wechat(request) and not pending else "",
    }


def _after_sign_in(request, user) -> None:
    """Bind the openid a visitor brought from 网页授权 before signing in, if any."""
    request.session.pop(SIGNED_OUT_KEY, None)
    refused = bind_pending_openid(request, user)
    if refused:
        messages.error(request, refused)


@sensitive_post_parameters("password1", "password2")
def register(request):
    if request.user.is_authenticated:
        return redirect(safe_next(request))
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        _after_sign_in(request, user)
        return redirect(safe_next(request))
    return render(request, "accounts/register.html", {"form": form, "next": safe_next(request, ""), **_wechat_context(request)})


class SiteLoginView(LoginView):
    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def get(self, request, *args, **kwargs):
        # Inside WeChat, try the silent 网页授权 first: a bound WeChat needs no password. Not
        # again once it has answered (`wechat` in the URL, an unbound identity kept, a
        # failure), nor right after 退出登录, which would otherwise undo itself.
        session = request.session
        if (
            in_wechat(request)
            and "wechat" not in request.GET
            and not any(session.get(key) for key in (FAILED_KEY, SIGNED_OUT_KEY))
            and pending_identity(request) is None
        ):
            return redirect(wechat_signin_url(safe_next(request)))
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")[:150]
        wait = throttle.wait_seconds(request, username)
        if wait:
            # Unbound, so the password is not checked at all; the name stays in its field.
            form = self.form_class(request, initial={"username": username})
            context = self.get_context_data(form=form, throttle_message=f"尝试过于频繁，请 {wait} 秒后再试。")
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        _after_sign_in(self.request, form.get_user())
        return response

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **_wechat_context(self.request)}

    def get_redirect_url(self):
        # LoginView already refuses off-site values; an empty answer falls back to
        # LOGIN_REDIRECT_URL (/recharge/).
        return safe_next(self.request, "")


@never_cache
@require_POST
def logout(request):
    auth_logout(request)
    if in_wechat(request):
        request.session[SIGNED_OUT_KEY] = True
    return redirect(settings.LOGOUT_REDIRECT_URL)


def locked_out(request, original_response=None, credentials=None):
    """What django-axes answers a refused sign-in (AXES_LOCKOUT_CALLABLE): how long to wait,
    and the ways on. Inside WeChat a bound WeChat still signs in: the lock is on passwords."""
    minutes, by_address = throttle.lockout(request, credentials)
    next_path = safe_next(request)
    return render(
        request,
        "accounts/locked_out.html",
        {
            "minutes": minutes,
            "by_address": by_address,
            "username": (credentials or {}).get("username") or request.POST.get("username", ""),
            "login_url": reverse("accounts:login") + "?" + urlencode({"next": next_path}),
            "wechat_signin_url": wechat_signin_url(next_path) if in_wechat(request) else "",
        },
        status=429,
    )


@never_cache
@login_required
def account(request):
    """我的: who is signed in, which WeChat is bound, and whether WeChat messages about the
    balance are sent (a switch, saved as it is turned; without JavaScript, by 保存)."""
    if request.method == "POST":
        wanted = request.POST.get("wechat_messages") == "on"
        request.user.set_wechat_messages(wanted)
        messages.success(request, "已开启微信消息通知" if wanted else "已关闭微信消息通知，余额变动将不再通过微信通知你")
        return redirect("accounts:account")
    return render(request, "accounts/account.html", {"account": request.user})

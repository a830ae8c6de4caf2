"""The admin's second-factor pages (docs/operations.md#两步验证): enrolling an authenticator app,
the code asked for after the password, and a superuser's reset of another operator's.

SiteAdmin (wxrecharge/admin.py) routes to these and sends an operator who still owes the second
factor (accounts.operators.second_factor_pending) here from every admin URL. The checks of a
code, their throttling and the recovery codes are accounts/two_factor.py's.
"""

from __future__ import annotations

import django_otp
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.middleware.csrf import rotate_token
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import two_factor
from accounts.models import User
from accounts.operators import needs_second_factor, second_factor_pending
from audit.log import record


class CodeForm(forms.Form):
    code = forms.CharField(
        label="验证码",
        max_length=32,
        strip=True,
        error_messages={"required": "请输入验证码"},
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "autocapitalize": "off", "spellcheck": "false"}
        ),
    )


class ResetForm(forms.Form):
    required_css_class = "required"

    reason = forms.CharField(
        label="重置原因",
        max_length=200,
        error_messages={"required": "请填写重置原因"},
        help_text="会记入操作审计，例如：手机丢失，已电话核实本人",
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )


def _next(site: admin.AdminSite, request) -> str:
    """Where to go once the code is accepted: the admin page asked for, or the start page."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return url if allowed else reverse("admin:index", current_app=site.name)


def _is_staff(request) -> bool:
    user = request.user
    return user.is_authenticated and user.is_active and user.is_staff


def _is_verified(user) -> bool:
    verified = getattr(user, "is_verified", None)
    return verified is not None and verified()


def _to_login(site: admin.AdminSite, request):
    return redirect_to_login(request.get_full_path(), reverse("admin:login", current_app=site.name))


def send_to_second_factor(site: admin.AdminSite, request, next_url: str | None = None):
    """The page an operator who owes the second factor goes to instead: the code, or enrolment
    for one who has no authenticator yet; then on to `next_url` (default: the page asked for)."""
    step = "admin:otp_verify" if two_factor.has_authenticator(request.user) else "admin:otp_setup"
    return redirect_to_login(next_url or request.get_full_path(), reverse(step, current_app=site.name))


def _signed_in_with(request, device) -> None:
    """This session has passed the second factor with `device`: a new session key and CSRF
    token, as Django gives at sign-in, since the session is now worth more."""
    request.session.cycle_key()
    rotate_token(request)
    django_otp.login(request, device)


def _context(site: admin.AdminSite, request, title: str, **extra) -> dict:
    return {
        **site.each_context(request),
        "title": title,
        "next": _next(site, request),
        "issuer": settings.OTP_TOTP_ISSUER,  # the name the authenticator app shows
        **extra,
    }


def verify_view(site: admin.AdminSite, request):
    """The code from the authenticator app (or a recovery code) after the password."""
    if not _is_staff(request):
        return _to_login(site, request)
    user = request.user
    if not second_factor_pending(request):
        return redirect(_next(site, request))
    if not two_factor.has_authenticator(user):
        return send_to_second_factor(site, request, _next(site, request))
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        check = two_factor.verify(user, form.cleaned_data["code"])
        if check.ok:
            _signed_in_with(request, check.device)
            if check.recovery:
                left = two_factor.recovery_codes_left(user)
                record("otp_recovery_used", request=request, obj=user, changes={"剩余恢复码": left})
                setup_url = reverse("admin:otp_setup", current_app=site.name)
                messages.warning(
                    request,
                    format_html(
                        '你用恢复码登录了，还剩 {} 个。手机丢失或换了手机，请立即<a href="{}">重新绑定身份验证器</a>。',
                        left,
                        setup_url,
                    ),
                )
            return redirect(_next(site, request))
        record("otp_failed", request=request, obj=user, changes={"结果": check.refusal})
        form.add_error("code", check.refusal)
    return TemplateResponse(request, "admin/otp/verify.html", _context(site, request, "两步验证", form=form))


def setup_view(site: admin.AdminSite, request):
    """Enrol an authenticator app: scan (or type) the secret, enter a code to confirm it, then
    the recovery codes, shown once. Also how a verified operator moves to a new phone."""
    if not _is_staff(request):
        return _to_login(site, request)
    user = request.user
    if not needs_second_factor(user):
        messages.info(request, "你的账号没有资金相关权限，无需两步验证。")
        return redirect("admin:index")
    replacing = two_factor.has_authenticator(user)
    if replacing and not _is_verified(user):
        # A password alone never replaces an enrolled app: the code (or a recovery code) first.
        return send_to_second_factor(site, request)
    device = two_factor.pending_authenticator(user)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        check, codes = two_factor.confirm_authenticator(device, form.cleaned_data["code"])
        if check.ok:
            _signed_in_with(request, check.device)
            record("otp_enrolled", request=request, obj=user, changes={"恢复码": f"新生成 {len(codes)} 个"})
            context = _context(site, request, "保存恢复码", codes=codes)
            return TemplateResponse(request, "admin/otp/recovery_codes.html", context)
        record("otp_failed", request=request, obj=user, changes={"结果": check.refusal, "环节": "绑定身份验证器"})
        form.add_error("code", check.refusal)
    context = _context(
        site,
        request,
        "绑定身份验证器",
        form=form,
        replacing=replacing,
        qr_svg=two_factor.provisioning_qr_svg(device),
        secret=two_factor.secret_for_typing(device),
    )
    return TemplateResponse(request, "admin/otp/setup.html", context)


def reset_view(site: admin.AdminSite, request, pk: int):
    """A superuser removes another operator's authenticator and recovery codes (a lost phone
    and no recovery code left): they enrol again at their next sign-in."""
    if not request.user.is_superuser:
        raise PermissionDenied
    target = get_object_or_404(User, pk=pk)
    form = ResetForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        two_factor.reset(target, reason=form.cleaned_data["reason"], request=request)
        messages.success(request, f"已重置 {target.username} 的两步验证；对方下次登录时重新绑定身份验证器。")
        return redirect("admin:accounts_user_change", target.pk)
    context = {
        **site.each_context(request),
        "title": f"重置两步验证：{target.username}",
        "action": "重置两步验证",
        "opts": User._meta,
        "original": target,
        "form": form,
        "has_authenticator": two_factor.has_authenticator(target),
        "recovery_codes_left": two_factor.recovery_codes_left(target),
    }
    return TemplateResponse(request, "admin/otp/reset.html", context)

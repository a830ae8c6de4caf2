from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters

from accounts import throttle
from accounts.binding import bind_pending_openid
from accounts.forms import LoginForm, RegisterForm


def safe_next(request, default: str = settings.LOGIN_REDIRECT_URL) -> str:
    """The `next` of the request when it stays on this site, otherwise `default`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def _bind_after_sign_in(request, user) -> None:
    """Bind the openid a visitor brought from 网页授权 before signing in, if any."""
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
        _bind_after_sign_in(request, user)
        return redirect(safe_next(request))
    return render(request, "accounts/register.html", {"form": form, "next": safe_next(request, "")})


class SiteLoginView(LoginView):
    template_name = "accounts/login.html"
    form_class = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        wait = throttle.wait_seconds(request, request.POST.get("username", "")[:150])
        if wait:
            form = self.form_class(request)  # unbound: the password is not checked at all
            context = self.get_context_data(form=form, throttle_message=f"尝试过于频繁，请 {wait} 秒后再试。")
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        _bind_after_sign_in(self.request, form.get_user())
        return response

    def get_redirect_url(self):
        # LoginView already refuses off-site values; an empty answer falls back to
        # LOGIN_REDIRECT_URL (/recharge/).
        return safe_next(self.request, "")

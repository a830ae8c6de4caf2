"""The operators' admin site (wiring): Django's admin with the start page's panels, which
the apps contribute (common.admin.start_page_panel).

The site is installed as the default one (`AdminConfig.default_site`), so every
`@admin.register` and `admin.site` in the project use it.
"""

from __future__ import annotations

from functools import update_wrapper

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from accounts.operators import second_factor_pending
from common.admin import start_page_context


def _otp_pages():
    """wxrecharge/two_factor.py (the second factor's pages). It imports models, and INSTALLED_APPS
    loads this module (for AdminConfig) before any model can be imported."""
    from wxrecharge import two_factor

    return two_factor


class SiteAdmin(admin.AdminSite):
    """Django's admin with the operators' figures on its start page."""

    index_title = "运营概览"
    # WeChat's 26- to 32-digit numbers make wide lists: at a laptop's width the app sidebar
    # would push half of every list's columns out of sight. The breadcrumbs lead home instead.
    enable_nav_sidebar = False

    # The start page and the app index list the day's work first (Django sorts by name).
    APP_ORDER = ("orders", "payments", "wallet", "offers", "reconciliation", "accounts", "outbox", "axes", "auth", "sandbox")

    # The header and the pages' titles bear the name the authenticator app lists the operator's
    # account under (OTP_TOTP_ISSUER, 「SITE_NAME 运营后台」): one name for one back office.
    # Read when a page is drawn, so that it follows the settings.
    @property
    def site_header(self) -> str:
        return settings.OTP_TOTP_ISSUER

    @property
    def site_title(self) -> str:
        return settings.OTP_TOTP_ISSUER

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: n for n, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def index(self, request, extra_context=None):
        return super().index(request, {**start_page_context(request), **(extra_context or {})})

    # -- the second factor (docs/operations.md#两步验证) --
    # An operator who can move money (accounts/operators.py) and has signed in with a password
    # only has no permission here until a code from the authenticator app is accepted: every
    # admin URL sends them to the code (or to enrolment), then back to the page they asked for.

    def has_permission(self, request):
        return super().has_permission(request) and not second_factor_pending(request)

    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        def after_second_factor(request, *args, **kwargs):
            if second_factor_pending(request):
                if request.path == reverse("admin:logout", current_app=self.name):
                    return view(request, *args, **kwargs)  # signing out needs no code (LogoutView checks CSRF)
                return _otp_pages().send_to_second_factor(self, request)
            return inner(request, *args, **kwargs)

        return update_wrapper(after_second_factor, inner)

    def login(self, request, extra_context=None):
        if request.method == "GET" and second_factor_pending(request):
            return _otp_pages().send_to_second_factor(self, request, request.GET.get("next"))
        return super().login(request, extra_context)

    def get_urls(self):
        # Not behind admin_view: they are where admin_view sends an operator who owes the code.
        otp = [
            path("otp/verify/", csrf_protect(never_cache(self.otp_verify)), name="otp_verify"),
            path("otp/setup/", csrf_protect(never_cache(self.otp_setup)), name="otp_setup"),
            path("otp/reset/<int:pk>/", self.admin_view(self.otp_reset), name="otp_reset"),
        ]
        return [*otp, *super().get_urls()]

    def otp_verify(self, request):
        return _otp_pages().verify_view(self, request)

    def otp_setup(self, request):
        return _otp_pages().setup_view(self, request)

    def otp_reset(self, request, pk: int):
        return _otp_pages().reset_view(self, request, pk)


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin with SiteAdmin as `admin.site` (INSTALLED_APPS names this)."""

    default_site = "wxrecharge.admin.SiteAdmin"

    def ready(self) -> None:
        super().ready()
        # django-otp's own device pages show each operator's TOTP secret (anyone who reads it
        # can make their codes) and let devices be edited around the audit log: enrolment and
        # resets go through wxrecharge/two_factor.py only.
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        for model in (TOTPDevice, StaticDevice):
            if admin.site.is_registered(model):
                admin.site.unregister(model)

"""The operators' admin site (wiring): Django's admin with the start page's panels, which
the apps contribute (common.admin.start_page_panel).

The site is installed as the default one (`AdminConfig.default_site`), so every
`@admin.register` and `admin.site` in the project use it.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig

from common.admin import start_page_context


class SiteAdmin(admin.AdminSite):
    """Django's admin with the operators' figures on its start page."""

    site_header = "wxrecharge 运营后台"
    site_title = "wxrecharge"
    index_title = "运营概览"
    # WeChat's 26- to 32-digit numbers make wide lists: at a laptop's width the app sidebar
    # would push half of every list's columns out of sight. The breadcrumbs lead home instead.
    enable_nav_sidebar = False

    # The start page and the app index list the day's work first (Django sorts by name).
    APP_ORDER = ("orders", "payments", "wallet", "offers", "reconciliation", "accounts", "outbox", "axes", "auth", "sandbox")

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: n for n, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def index(self, request, extra_context=None):
        return super().index(request, {**start_page_context(request), **(extra_context or {})})


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin with SiteAdmin as `admin.site` (INSTALLED_APPS names this)."""

    default_site = "wxrecharge.admin.SiteAdmin"

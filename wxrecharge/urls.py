from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import api as accounts_api
from common import converters  # noqa: F401 (registers <trade_no:>)
from messaging import api as messaging_api
from payments import api as payments_api
from wxrecharge import views

# An admin page refused to an operator answers in the admin's look (Django calls this for every
# PermissionDenied; the other error pages are the templates' own).
handler403 = "wxrecharge.views.permission_denied"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="payments:recharge", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("", include("payments.urls")),
    path("", include("orders.urls")),
    path("", include("wallet.urls")),
    path("api/mp/login", accounts_api.login, name="miniprogram_login"),
    path("api/mp/prepay", payments_api.miniprogram_prepay, name="miniprogram_prepay"),
    path("api/mp/packages", payments_api.miniprogram_packages, name="miniprogram_packages"),
    path("api/mp/orders", payments_api.miniprogram_orders, name="miniprogram_orders"),
    path("api/mp/orders/<trade_no:out_trade_no>", payments_api.miniprogram_order, name="miniprogram_order"),
    path("api/mp/subscriptions", messaging_api.subscriptions, name="miniprogram_subscriptions"),
    path("api/mp/settings", messaging_api.message_settings, name="miniprogram_settings"),
    path("admin/", admin.site.urls),
]

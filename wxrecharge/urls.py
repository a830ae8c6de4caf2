from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from wxrecharge import views

admin.site.site_header = "wxrecharge 运营后台"
admin.site.site_title = "wxrecharge"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="payments:recharge", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("", include("payments.urls")),
    path("", include("orders.urls")),
    path("admin/", admin.site.urls),
]

if settings.WECHAT_SANDBOX:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))

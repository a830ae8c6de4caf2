"""The site's URLs with the WeChat sandbox under /sandbox/ (ROOT_URLCONF of devtools/settings.py).

The product's URLs (wxrecharge/urls.py) know nothing of the sandbox."""

from django.urls import include, path

from wxrecharge.urls import handler403  # noqa: F401 (Django reads it from the root URLconf)
from wxrecharge.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    *site_urlpatterns,
    path("sandbox/", include("devtools.wechat_sandbox.urls")),
]

from django.contrib.auth.views import LogoutView
from django.urls import path

from accounts import views, wechat_views

app_name = "accounts"

urlpatterns = [
    path("register/", views.register, name="register"),
    path("login/", views.SiteLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("wechat/authorize/", wechat_views.authorize, name="wechat_authorize"),
    path("wechat/callback/", wechat_views.callback, name="wechat_callback"),
]

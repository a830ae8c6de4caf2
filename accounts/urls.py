from django.urls import path

from accounts import views, wechat_views

app_name = "accounts"

urlpatterns = [
    path("", views.account, name="account"),
    path("register/", views.register, name="register"),
    path("login/", views.SiteLoginView.as_view(), name="login"),
    path("logout/", views.logout, name="logout"),
    path("wechat/authorize/", wechat_views.authorize, name="wechat_authorize"),
    path("wechat/callback/", wechat_views.callback, name="wechat_callback"),
    path("wechat/quick-login/", wechat_views.quick_login, name="wechat_quick_login"),
    path("wechat/switch/", wechat_views.switch, name="wechat_switch"),
]

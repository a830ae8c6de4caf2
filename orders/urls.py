from django.urls import path

from common import converters  # noqa: F401 (registers <trade_no:>)
from orders import views

app_name = "orders"

urlpatterns = [
    path("orders/", views.history, name="history"),
    path("orders/<trade_no:out_trade_no>/", views.detail, name="detail"),
    # 保存二维码: a Native order's QR code as a PNG (docs/paying.md)
    path("orders/<trade_no:out_trade_no>/qrcode.png", views.qrcode, name="qrcode"),
]

from django.urls import path

from common import converters  # noqa: F401 (registers <trade_no:>)
from payments import api, views

app_name = "payments"

urlpatterns = [
    path("recharge/", views.recharge, name="recharge"),
    path("payments/jsapi/prepay/", api.jsapi_prepay, name="jsapi_prepay"),
    path("payments/orders/<trade_no:out_trade_no>/status/", api.order_status, name="order_status"),
    path("payments/orders/<trade_no:out_trade_no>/pay/", api.order_pay, name="order_pay"),
    path("payments/wechat/notify/", views.notify, name="notify"),
    path("payments/wechat/refund-notify/", views.refund_notify, name="refund_notify"),
    path("payments/wechat/v3/notify/", views.notify_v3, name="notify_v3"),
    path("payments/wechat/v3/refund-notify/", views.refund_notify_v3, name="refund_notify_v3"),
]

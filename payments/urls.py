from django.urls import path

from common import converters  # noqa: F401 (registers <trade_no:>)
from payments import api, refund_views, views
from payments.providers import notify_routes

app_name = "payments"

urlpatterns = [
    path("recharge/", views.recharge, name="recharge"),
    path("wallet/refund/", refund_views.refund_request, name="refund_request"),
    path("payments/jsapi/prepay/", api.jsapi_prepay, name="jsapi_prepay"),
    path("payments/prepay/", api.page_prepay, name="prepay"),
    path("payments/orders/<trade_no:out_trade_no>/status/", api.order_status, name="order_status"),
    path("payments/orders/<trade_no:out_trade_no>/pay/", api.order_pay, name="order_pay"),
    # Each provider's notify endpoints, as it declares them (Provider.NOTIFY_ROUTES).
    *(path(route, views.NOTIFY_VIEWS[route], name=name) for route, name, _, _ in notify_routes()),
]

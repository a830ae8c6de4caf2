from django.urls import path

from sandbox import cashier, dashboard, merchant_api, oauth

app_name = "sandbox"

urlpatterns = [
    path("", dashboard.index, name="index"),
    path("faults/<int:pk>/delete/", dashboard.delete_fault, name="delete_fault"),
    path("faults/reset/", dashboard.reset_faults, name="reset_faults"),
    # WeChat Pay merchant API (base URL https://api.mch.weixin.qq.com/)
    path("pay/unifiedorder", merchant_api.unifiedorder, name="unifiedorder"),
    path("pay/orderquery", merchant_api.orderquery, name="orderquery"),
    path("pay/closeorder", merchant_api.closeorder, name="closeorder"),
    path("secapi/pay/refund", merchant_api.refund, name="refund"),
    path("pay/refundquery", merchant_api.refundquery, name="refundquery"),
    path("pay/downloadbill", merchant_api.downloadbill, name="downloadbill"),
    # WeChat login (https://open.weixin.qq.com/connect/ and https://api.weixin.qq.com/)
    path("connect/oauth2/authorize", oauth.authorize, name="authorize"),
    path("sns/oauth2/access_token", oauth.access_token, name="access_token"),
    path("sns/jscode2session", oauth.jscode2session, name="jscode2session"),
    path("mp/login-code", oauth.login_code, name="login_code"),
    # The cashier that stands in for WeixinJSBridge
    path("cashier/prepay", cashier.prepay, name="cashier_prepay"),
    path("cashier/pay", cashier.pay, name="cashier_pay"),
]

from django.urls import path, re_path

from devtools.wechat_sandbox import (
    cashier,
    counter,
    dashboard,
    merchant_api,
    merchant_api_v3,
    messages,
    oauth,
    phone,
    robot,
    shipping,
    tokens,
)

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
    # WeChat Pay API v3 (base URL https://api.mch.weixin.qq.com/, paths /v3/...)
    path("v3/pay/transactions/jsapi", merchant_api_v3.jsapi, name="v3_jsapi"),
    path("v3/pay/transactions/native", merchant_api_v3.native, name="v3_native"),
    path("v3/pay/transactions/h5", merchant_api_v3.h5, name="v3_h5"),
    path("v3/pay/transactions/out-trade-no/<str:out_trade_no>", merchant_api_v3.query_by_out_trade_no, name="v3_query"),
    path("v3/pay/transactions/id/<str:transaction_id>", merchant_api_v3.query_by_transaction_id, name="v3_query_by_id"),
    path("v3/pay/transactions/out-trade-no/<str:out_trade_no>/close", merchant_api_v3.close, name="v3_close"),
    path("v3/refund/domestic/refunds", merchant_api_v3.refund, name="v3_refund"),
    path("v3/refund/domestic/refunds/<str:out_refund_no>", merchant_api_v3.refund_query, name="v3_refund_query"),
    path("v3/certificates", merchant_api_v3.certificates, name="v3_certificates"),
    path("v3/bill/tradebill", merchant_api_v3.tradebill, name="v3_tradebill"),
    path("v3/billdownload/file", merchant_api_v3.billdownload, name="v3_billdownload"),
    re_path(r"^v3/(?P<rest>.*)$", merchant_api_v3.not_found, name="v3_not_found"),
    # WeChat login (https://open.weixin.qq.com/connect/ and https://api.weixin.qq.com/)
    path("connect/oauth2/authorize", oauth.authorize, name="authorize"),
    path("sns/oauth2/access_token", oauth.access_token, name="access_token"),
    path("sns/jscode2session", oauth.jscode2session, name="jscode2session"),
    path("mp/login-code", oauth.login_code, name="login_code"),
    # An app's access_token (https://api.weixin.qq.com/cgi-bin/), and an API that checks it
    path("cgi-bin/stable_token", tokens.stable_token_view, name="stable_token"),
    path("cgi-bin/token", tokens.token_view, name="token"),
    path("cgi-bin/get_api_domain_ip", tokens.get_api_domain_ip, name="get_api_domain_ip"),
    # Messages to users (https://api.weixin.qq.com/cgi-bin/message/...), and the mini program's
    # wx.requestSubscribeMessage
    path("cgi-bin/message/template/send", messages.template_send, name="template_send"),
    path("cgi-bin/message/subscribe/send", messages.subscribe_send, name="subscribe_send"),
    path("mp/subscribe", messages.mp_subscribe, name="mp_subscribe"),
    # 小程序发货信息管理 (https://api.weixin.qq.com/wxa/sec/order/...)
    path("wxa/sec/order/upload_shipping_info", shipping.upload_shipping_info, name="upload_shipping_info"),
    path("wxa/sec/order/get_order", shipping.get_order, name="get_order"),
    # The 企业微信 group robot (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)
    path("robot/send", robot.send, name="robot_send"),
    path("cgi-bin/webhook/send", robot.send, name="robot_webhook_send"),
    path("robot/", robot.group, name="robot"),
    path("robot/toggle/", robot.toggle, name="robot_toggle"),
    # A sandbox WeChat's phone: its messages, grants and switches; and the apps' templates
    path("messages/", messages.messages_page, name="messages"),
    path("messages/act/", messages.messages_act, name="messages_act"),
    path("messages/shipping/<str:transaction_id>/confirm/", shipping.confirm_receipt_view, name="confirm_receipt"),
    path("templates/", messages.templates_page, name="templates"),
    path("templates/<int:pk>/delete/", messages.template_delete, name="template_delete"),
    path("templates/<int:pk>/restore/", messages.template_restore, name="template_restore"),
    # The merchant's side of spending: a counter on /api/v1/, and a webhook receiver
    path("pos/", counter.counter, name="counter"),
    path("webhooks/", counter.webhooks, name="webhooks"),
    path("webhooks/receive", counter.webhook_receive, name="webhook_receive"),
    # The cashier that stands in for WeixinJSBridge
    path("cashier/prepay", cashier.prepay, name="cashier_prepay"),
    path("cashier/pay", cashier.pay, name="cashier_pay"),
    # The WeChat app on a phone: a Native code_url scanned, and the H5 middle page (mweb_url / h5_url)
    path("native/bizpayurl", phone.native_scan, name="native_scan"),
    path("native/pay", phone.native_pay, name="native_pay"),
    path("h5/checkmweb", phone.h5_checkmweb, name="h5_checkmweb"),
    path("h5/pay", phone.h5_pay, name="h5_pay"),
]

"""Messages in Chromium: a member recharges on a phone in WeChat and the 公众号's template
message arrives in the sandbox's WeChat (its message page) with the amount, and its 详情 opens
the order; a member turns messages off on 我的 and the next recharge sends none; a mini-program
payment's shipping record is uploaded, as the sandbox's WeChat and the order's admin page show."""

from __future__ import annotations

import re

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import expect

from accounts.models import User
from devtools.wechat_sandbox.services import openid_for
from messaging.models import Channel, Message
from orders.models import RechargeOrder
from outbox import delivery as worker
from tests.browser.conftest import shoot, sign_in_with_cookie, wechat_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def templates(live_server, settings):
    settings.SITE_URL = live_server.url
    call_command("demo_templates", stdout=open("/dev/null", "w"))


def recharge_ten_yuan(page) -> str:
    page.get_by_role("radio", name="¥10", exact=True).check()
    page.get_by_test_id("pay-button").click()
    page.get_by_role("dialog", name="微信支付").get_by_role("button", name="支付", exact=True).click()
    expect(page).to_have_url(re.compile(r"/orders/\d{26}/\?result=ok$"))
    expect(page.get_by_test_id("order-result")).to_have_text("支付成功")
    return re.search(r"/orders/(\d{26})/", page.url)[1]


def test_a_recharge_sends_a_template_message_whose_link_opens_the_order(phone, live_server):
    wechat_member(phone, live_server, "wang-li")
    sign_in_with_cookie(phone, live_server, "wang-li")
    phone.wait_for_load_state("load")
    out_trade_no = recharge_ten_yuan(phone)
    worker.run_pass()  # the outbox worker (deliver_webhooks), as make run runs it

    phone.goto(live_server.url + "/sandbox/messages/")  # the member's WeChat, this browser's
    card = phone.get_by_test_id("template-messages").get_by_test_id("message").first
    expect(card.get_by_test_id("message-title")).to_have_text("充值成功通知")
    expect(card).to_contain_text("充值金额：¥10.00")
    expect(card).to_contain_text(out_trade_no)
    shoot(phone, "60-wechat-message")
    card.get_by_test_id("message-link").click()
    expect(phone).to_have_url(f"{live_server.url}/orders/{out_trade_no}/")
    expect(phone.get_by_test_id("order-view")).to_have_attribute("data-status", "paid")


def test_a_member_turns_messages_off_on_the_account_page_and_gets_none(phone, live_server):
    user = wechat_member(phone, live_server, "zhao-min")
    sign_in_with_cookie(phone, live_server, "zhao-min", "/accounts/")
    phone.wait_for_load_state("load")
    switch = phone.get_by_test_id("messages-switch")
    expect(switch).to_be_checked()
    shoot(phone, "61-account")
    switch.click()  # saved as it is turned
    expect(phone.get_by_test_id("message")).to_contain_text("已关闭微信消息通知")
    expect(phone.get_by_test_id("messages-switch")).not_to_be_checked()
    user.refresh_from_db()
    assert user.wechat_messages is False

    phone.goto(live_server.url + "/recharge/")
    phone.wait_for_load_state("load")
    recharge_ten_yuan(phone)
    worker.run_pass()
    assert Message.objects.get(channel=Channel.OFFICIAL).status == Message.Status.SKIPPED
    phone.goto(live_server.url + "/sandbox/messages/")
    expect(phone.get_by_test_id("identity")).to_be_visible()
    expect(phone.get_by_test_id("template-messages").get_by_test_id("message")).to_have_count(0)


def test_a_mini_program_payment_uploads_its_shipping_record(phone, desk, live_server, admin_user):
    sandbox = live_server.url + "/sandbox/"
    openid = openid_for(settings.WECHAT_MINIPROGRAM_APPID, "mp-sun")
    code = requests.post(sandbox + "mp/login-code", json={"openid": openid}, timeout=10).json()["code"]
    client = Client()
    auth = {
        "HTTP_AUTHORIZATION": "Bearer "
        + client.post("/api/mp/login", {"code": code}, content_type="application/json").json()["token"]
    }
    prepaid = client.post("/api/mp/prepay", {"amount": "25.00"}, content_type="application/json", **auth).json()
    paid = requests.post(
        sandbox + "cashier/pay", json={**prepaid["pay_params"], "appId": settings.WECHAT_MINIPROGRAM_APPID}, timeout=10
    ).json()
    assert paid == {"err_msg": "get_brand_wcpay_request:ok"}
    client.get(f"/api/mp/orders/{prepaid['out_trade_no']}?paid=1", **auth)
    order = RechargeOrder.objects.get(out_trade_no=prepaid["out_trade_no"])
    assert order.status == RechargeOrder.Status.PAID and User.objects.get(miniprogram_openid=openid)
    worker.run_pass()

    phone.goto(f"{sandbox}messages/?openid={openid}")  # the payer's WeChat: 发货信息
    shipping = phone.get_by_test_id("shipping")
    expect(shipping).to_contain_text(order.transaction_id)
    expect(shipping.get_by_test_id("shipping-state")).to_contain_text("已发货")
    shoot(phone, "62-wechat-shipping")

    sign_in_with_cookie(desk, live_server, admin_user.username, f"/admin/orders/rechargeorder/{order.pk}/change/")
    expect(desk.locator(".field-shipping_display")).to_contain_text("已上传")
    shoot(desk, "63-admin-order-shipping")

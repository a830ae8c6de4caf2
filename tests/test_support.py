"""How users reach support (SUPPORT_PHONE, SUPPORT_WECHAT, SUPPORT_URL): shown wherever a page
sends them to 客服, and nothing at all when none is configured (no 请联系客服 leading nowhere)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts import binding
from accounts.forms import LoginForm
from common import support
from orders.models import RechargeOrder
from tests.accounts.helpers import open_in_wechat, openid
from tests.factories import make_order, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(settings):
    settings.SUPPORT_PHONE = "400-800-1234"
    settings.SUPPORT_WECHAT = "wxrecharge_kefu"
    settings.SUPPORT_URL = "https://help.example.com/kefu"
    return settings


@pytest.fixture
def unconfigured(settings):
    settings.SUPPORT_PHONE = settings.SUPPORT_WECHAT = settings.SUPPORT_URL = ""
    return settings


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def locked_out(client, settings) -> str:
    make_user("victim")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            response = client.post(
                "/accounts/login/", {"username": "victim", "password": "wrong-password-1"}, REMOTE_ADDR="10.0.0.1"
            )
            clock.shift(timedelta(seconds=30))
    assert response.status_code == 429
    return text(response)


def test_nothing_is_configured_by_default():
    assert not support.support() and support.ask("如有疑问，") == ""


def test_the_ways_read_as_one_sentence(configured):
    assert support.ask("如需更换，") == (
        "如需更换，请联系客服：电话 400-800-1234，微信 wxrecharge_kefu，在线客服 https://help.example.com/kefu。"
    )


def test_the_lockout_page_says_how_to_reach_support(client, configured):
    html = locked_out(client, configured)
    assert "忘记密码或仍无法登录，请联系客服：" in html
    assert '<a class="weui-link" href="tel:4008001234">400-800-1234</a>' in html
    assert "wxrecharge_kefu" in html and 'href="https://help.example.com/kefu"' in html


def test_with_no_support_configured_the_lockout_page_does_not_point_nowhere(client, unconfigured):
    html = locked_out(client, unconfigured)
    assert "登录失败次数过多" in html and "客服" not in html


def test_a_url_that_is_not_a_web_address_is_shown_not_linked(client, settings, unconfigured):
    settings.SUPPORT_URL = "javascript:alert(1)"
    html = locked_out(client, settings)
    assert '在线客服 <span class="support__value">javascript:alert(1)</span>' in html and 'href="javascript' not in html


def test_the_bound_elsewhere_message_says_how_to_reach_support(configured):
    user = make_user("bob", openid="oAlreadyBound")
    refused = binding.bind_openid(user, "oSomeoneElse")
    assert refused.startswith("你的账户已经绑定了另一个微信，不能更换。如需更换，请联系客服：电话 400-800-1234")


def test_without_support_the_bound_elsewhere_message_stops_at_the_fact(unconfigured):
    user = make_user("bob", openid="oAlreadyBound")
    assert binding.bind_openid(user, "oSomeoneElse") == "你的账户已经绑定了另一个微信，不能更换。"


def test_the_inactive_account_message_of_the_sign_in_form_names_support(configured):
    assert (
        LoginForm().error_messages["inactive"] == "这个账户已停用。如有疑问，请联系客服：电话 400-800-1234，"
        "微信 wxrecharge_kefu，在线客服 https://help.example.com/kefu。"
    )


@pytest.mark.django_db(transaction=True)
def test_a_disabled_wechat_owner_is_told_how_to_reach_support(client, sandbox_url, settings):
    settings.SUPPORT_WECHAT = "wxrecharge_kefu"
    make_user("gone", openid=openid(), is_active=False)
    response = open_in_wechat(client, "/accounts/login/")
    assert response.status_code == 403 and "账户已停用。如有疑问，请联系客服：微信 wxrecharge_kefu。" in text(response)


def test_the_page_of_a_payment_being_confirmed_says_how_to_reach_support(client, configured):
    user = make_user("payer", openid="oPayer")
    order = make_order(user, paid_reported_at=timezone.now())
    client.force_login(user)
    html = text(client.get(f"/orders/{order.out_trade_no}/"))
    assert "如长时间未到账，请联系客服：" in html and 'href="tel:4008001234"' in html
    assert f"联系时请提供订单号 {order.out_trade_no}" in html


def test_without_support_the_page_of_a_payment_being_confirmed_still_names_the_order(client, unconfigured):
    user = make_user("payer", openid="oPayer")
    order = make_order(user, paid_reported_at=timezone.now())
    client.force_login(user)
    html = text(client.get(f"/orders/{order.out_trade_no}/"))
    assert "支付已收到，正在确认" in html and "客服" not in html and order.out_trade_no in html
    assert RechargeOrder.objects.get().status == RechargeOrder.Status.PENDING

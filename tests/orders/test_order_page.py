"""/orders/<out_trade_no>/: one order as its owner sees it, where the pay flow lands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from orders.models import RechargeOrder, Refund
from tests.factories import make_order, make_user
from tests.helpers import notify_xml

pytestmark = pytest.mark.django_db


@pytest.fixture
def payer(db):
    return make_user("payer", openid="oPayer")


@pytest.fixture
def payer_client(client, payer):
    client.force_login(payer)
    return client


def payable(user, **fields):
    """A pending order with a prepay_id that can still be paid for a while."""
    return make_order(user, prepay_id="wx-prepay-1", prepay_expires_at=timezone.now() + timedelta(minutes=20), **fields)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_a_pending_order_shows_its_status_amount_number_and_beijing_time(payer_client, payer):
    order = payable(payer, amount=1990, created_at=datetime(2026, 11, 2, 1, 30, 5, tzinfo=UTC))
    response = payer_client.get(f"/orders/{order.out_trade_no}/")
    assert response.status_code == 200
    html = text(response)
    assert 'data-status="pending"' in html and "待支付" in html and "¥19.90" in html
    assert order.out_trade_no in html and "2026-11-02 09:30:05" in html  # UTC 01:30 is 09:30 in Beijing
    assert "继续支付" in html and "刷新" in html and "完成" in html
    assert f'data-pay-url="/payments/orders/{order.out_trade_no}/pay/"' in html
    assert "js/order.js" in html


def test_a_payment_that_lands_while_the_page_is_built_shows_in_the_balance_too(payer_client, payer, monkeypatch):
    from orders import views
    from payments import services

    order = payable(payer, amount=1000)
    real = views.get_object_or_404

    def paid_meanwhile(queryset, **lookup):
        assert lookup["user"].balance == 0  # the signed-in user is read first
        services.apply_payment(order.out_trade_no, "4200000000202611240000000001", 1000, timezone.now())
        return real(queryset, **lookup)

    monkeypatch.setattr(views, "get_object_or_404", paid_meanwhile)
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/?result=ok"))
    assert 'data-status="paid"' in html and "当前余额 ¥10.00" in html
    assert '<strong data-testid="header-balance">¥10.00</strong>' in html


def test_a_pending_order_that_can_no_longer_be_paid_offers_a_new_recharge(payer_client, payer):
    order = make_order(payer, amount=3000, prepay_id="wx-old", prepay_expires_at=timezone.now() - timedelta(minutes=1))
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/"))
    assert "继续支付" not in html and "/pay/" not in html
    assert "超过支付时间" in html and 'href="/recharge/?amount=30.00"' in html


def test_a_paid_order_says_paid_with_the_balance_and_paid_time(payer_client, payer):
    order = make_order(payer, amount=1000)
    payer_client.post(
        "/payments/wechat/notify/", notify_xml(order.out_trade_no, 1000, time_end="20261102093100"), content_type="text/xml"
    )
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/?result=ok"))
    assert "支付成功" in html and "已支付" in html and "当前余额 ¥10.00" in html
    assert "2026-11-02 09:31:00" in html and "继续支付" not in html and "刷新" not in html


def test_a_refunded_order_lists_its_refunds_with_status_and_amount(payer_client, payer):
    order = make_order(
        payer,
        amount=1000,
        status=RechargeOrder.Status.REFUNDED,
        refunded_amount=300,
        transaction_id="4200000000000001",
        paid_at=timezone.now(),
    )
    Refund.objects.create(
        order=order,
        out_refund_no=Refund.new_out_refund_no(),
        amount=300,
        reason="r",
        status=Refund.Status.SUCCESS,
        settled_at=timezone.now(),
    )
    Refund.objects.create(
        order=order, out_refund_no=Refund.new_out_refund_no(), amount=200, reason="r", status=Refund.Status.PROCESSING
    )
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/"))
    assert "部分退款" in html and "已退款 ¥3.00" in html
    assert "退款成功" in html and "退款 ¥3.00" in html and "退款中" in html and "退款 ¥2.00" in html


def test_a_closed_order_says_so(payer_client, payer):
    order = make_order(payer, amount=1000, status=RechargeOrder.Status.CLOSED)
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/"))
    assert "订单已关闭" in html and "已关闭" in html and "继续支付" not in html and "重新充值" in html


@pytest.mark.parametrize(
    ("result", "words"), [("ok", "正在确认支付结果"), ("cancel", "已取消支付"), ("fail", "支付未完成"), ("<script>", "待支付")]
)
def test_the_pay_result_in_the_url_survives_a_reload(payer_client, payer, result, words):
    order = payable(payer)
    for _ in range(2):
        html = text(payer_client.get(f"/orders/{order.out_trade_no}/", {"result": result}))
        assert words in html
    assert "<script>" not in html.split("<body>")[1].replace("<script src=", "")
    assert "支付失败：支付失败" not in html


def test_after_wechat_said_ok_the_page_itself_does_not_promise_to_update(payer_client, payer):
    # Only the page's script, while it polls, says it will follow the payment (and says when
    # it stops): the page as served must not promise what a stopped (or absent) script won't do.
    order = payable(payer)
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/", {"result": "ok"}))
    assert "正在确认支付结果" in html and "自动更新" not in html and "停止" not in html


@pytest.mark.parametrize("result", ["", "ok", "cancel", "fail"])
def test_an_order_wechat_reported_paid_is_being_confirmed_whatever_the_pay_result_said(payer_client, payer, result):
    order = payable(payer, paid_reported_at=timezone.now())
    html = text(payer_client.get(f"/orders/{order.out_trade_no}/", {"result": result} if result else {}))
    assert "支付已收到，正在确认" in html and "请勿重复支付" in html and "支付确认中" in html
    for words in ("未扣款", "支付未完成", "已取消支付", "继续支付", "重新充值", "待支付", 'data-testid="pay-error"'):
        assert words not in html, words


def test_someone_elses_order_is_not_found(payer_client, settings):
    settings.DEBUG = False
    other = payable(make_user("other", openid="oOther"))
    response = payer_client.get(f"/orders/{other.out_trade_no}/")
    assert response.status_code == 404 and "页面不存在" in response.content.decode()
    assert other.out_trade_no not in response.content.decode()
    assert payer_client.get("/orders/NOSUCHORDER/").status_code == 404


def test_the_order_page_needs_sign_in(client, payer):
    order = payable(payer)
    response = client.get(f"/orders/{order.out_trade_no}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/orders/{order.out_trade_no}/"


# -- /recharge/ keeps the chosen amount -------------------------------------------------------------------------


def test_recharge_preselects_a_preset_amount_from_the_query(payer_client):
    html = payer_client.get("/recharge/?amount=30.00").content.decode()
    assert re.search(r'<input type="radio" name="preset" value="30" class="preset__input" checked>', html)
    assert html.count(" checked>") == 1 and 'value="30" placeholder' in html


def test_recharge_fills_a_custom_amount_from_the_query(payer_client):
    html = payer_client.get("/recharge/?amount=12.34").content.decode()
    assert " checked>" not in html and 'value="12.34" placeholder' in html


@pytest.mark.parametrize("amount", ["abc", "0", "99999999", "1.234", ""])
def test_recharge_ignores_an_amount_that_is_not_one(payer_client, amount):
    html = payer_client.get("/recharge/", {"amount": amount}).content.decode()
    assert " checked>" not in html and 'value="" placeholder' in html


def test_back_from_binding_it_says_wechat_is_bound_once_and_keeps_the_amount(payer_client):
    response = payer_client.get("/recharge/?amount=30.00&bound=1")
    assert response.status_code == 302 and response["Location"] == "/recharge/?amount=30.00"
    html = payer_client.get(response["Location"]).content.decode()
    assert "微信已绑定" in html and "立即充值" in html and 'value="30" class="preset__input" checked' in html
    assert "微信已绑定" not in payer_client.get("/recharge/?amount=30.00").content.decode()


def test_the_bound_flag_says_nothing_when_wechat_is_not_bound(client):
    client.force_login(make_user("unbound"))
    response = client.get("/recharge/?amount=30.00&bound=1")
    assert response["Location"] == "/recharge/?amount=30.00"
    assert "微信已绑定" not in client.get(response["Location"]).content.decode()


def test_the_bind_link_on_the_page_keeps_the_amount(client):
    from tests.accounts.helpers import IN_WECHAT

    client.force_login(make_user("unbound"))
    session = client.session
    session["wechat_oauth_failed"] = True  # else WeChat's silent authorisation binds it at once
    session.save()
    html = client.get("/recharge/?amount=30.00", **IN_WECHAT).content.decode()
    assert 'href="/accounts/wechat/authorize/?next=%2Frecharge%2F%3Famount%3D30.00"' in html

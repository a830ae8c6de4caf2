"""Paying outside WeChat, as the pages show it (docs/paying.md): the recharge page says how this
browser pays and always offers 立即充值; /payments/prepay/ places the order the browser's way
(JSAPI in WeChat, a QR code on a desktop, WeChat's H5 page on a phone); the order page draws a
Native order's QR code with its amount, account and countdown, and asks a person back from H5
whether they paid. Its ?from= and ?notice= only choose words: no URL is ever taken from them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.utils import timezone

from devtools.wechat_sandbox.models import Fault, Trade
from orders.models import RechargeOrder
from tests.factories import make_order, make_user
from tests.wallet.test_paycode import is_qr_of

pytestmark = pytest.mark.django_db

DESKTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.50(0x1800322c) NetType/WIFI Language/zh_CN"
)
PREPAY = "/payments/prepay/"
CODE_URL = "weixin://wxpay/bizpayurl?pr=AbCdEf123"
EVIL = "https://evil.example/steal"


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def native_order(user, amount: int = 1990, code_for=timedelta(minutes=15), **fields) -> RechargeOrder:
    """A pending Native order whose QR code (code_url) is valid for `code_for` more."""
    now = timezone.now()
    return make_order(
        user,
        amount=amount,
        openid="",
        trade_type=RechargeOrder.TradeType.NATIVE,
        pay_url=CODE_URL,
        pay_url_expires_at=now + code_for,
        **{"expires_at": now + timedelta(minutes=30), **fields},
    )


def h5_order(user, **fields) -> RechargeOrder:
    now = timezone.now()
    return make_order(
        user,
        openid="",
        trade_type=RechargeOrder.TradeType.MWEB,
        pay_url="https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=1",
        pay_url_expires_at=now + timedelta(minutes=5),
        **fields,
    )


def svg_of(html: str) -> str:
    match = re.search(r'<div class="pay-qr__code" data-testid="pay-qr-code">(<svg.*?</svg>)</div>', html, re.S)
    assert match, "no QR code on the page"
    return match.group(1)


@pytest.fixture
def member(db):
    return make_user("wang-fang", openid="oWangFang000000000000000001")


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


# -- the recharge page, in each browser -------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "h5_pay", "label"),
    [
        (DESKTOP_UA, True, "微信扫码支付"),
        (PHONE_UA, True, "跳转微信支付"),
        (PHONE_UA, False, "微信扫码支付"),
        (WECHAT_UA, True, "微信支付"),
    ],
)
def test_the_recharge_page_offers_to_pay_in_every_browser_and_says_how(
    member_client, member, settings, user_agent, h5_pay, label
):
    settings.WECHAT_SANDBOX = False
    settings.WECHAT_H5_PAY = h5_pay
    session = member_client.session
    session["wechat_current_openid"] = member.openid  # in WeChat: 网页授权 said it is the account's
    session.save()
    html = text(member_client.get("/recharge/", HTTP_USER_AGENT=user_agent))
    assert "立即充值" in html and 'data-prepay-url="/payments/prepay/"' in html and "js/recharge.js" in html
    assert f"支付方式：<strong>{label}</strong>" in html
    # The page's own QR code ("open this page in WeChat") is gone: it led people to pay into another account.
    assert "请在微信中打开" not in html and "<svg" not in html and 'data-testid="open-in-wechat"' not in html


def test_the_page_says_a_qr_code_follows_and_on_a_phone_that_another_phone_scans_it(member_client, settings):
    """WeChat pays a Native code scanned by 扫一扫 only, not one read from the album."""
    settings.WECHAT_H5_PAY = False
    assert "请用手机微信扫一扫支付" in text(member_client.get("/recharge/", HTTP_USER_AGENT=DESKTOP_UA))
    assert "请用另一部手机的微信「扫一扫」扫码支付" in text(member_client.get("/recharge/", HTTP_USER_AGENT=PHONE_UA))


def test_binding_wechat_is_offered_only_where_the_page_pays_in_wechat(client, settings):
    """Native and H5 name no payer, so an account without an openid pays outside WeChat as is;
    inside WeChat (JSAPI) the bind cell stays for when silent authorisation failed."""
    client.force_login(make_user("unbound"))
    for user_agent in (DESKTOP_UA, PHONE_UA):
        html = text(client.get("/recharge/", HTTP_USER_AGENT=user_agent))
        assert 'data-testid="bind-wechat"' not in html and "立即充值" in html
    session = client.session
    session["wechat_oauth_failed"] = True
    session.save()
    html = text(client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA))
    assert 'data-testid="bind-wechat"' in html and "支付方式：<strong>微信支付</strong>" in html


def test_inside_wechat_an_unbound_user_is_still_sent_through_silent_authorisation(client):
    client.force_login(make_user("fresh"))
    response = client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/wechat/authorize/")


def test_inside_wechat_another_wechat_than_the_accounts_pays_by_qr_code(member_client, settings):
    """WeChat refuses a JSAPI order paid by another WeChat than the one it names (payments.api.pay_methods)."""
    session = member_client.session
    session["wechat_current_openid"] = "oSomeoneElse0000000000000001"
    session.save()
    html = text(member_client.get("/recharge/", HTTP_USER_AGENT=WECHAT_UA))
    assert "支付方式：<strong>微信扫码支付</strong>" in html and 'data-testid="bind-wechat"' not in html


# -- /payments/prepay/, the browser's way (the sandbox answers as WeChat) --------------------------


def prepay(client, user_agent: str, **body):
    return client.post(PREPAY, body or {"amount": "19.90"}, content_type="application/json", HTTP_USER_AGENT=user_agent)


def test_a_desktop_gets_a_qr_code_to_show_on_the_order_page(payer_client):
    response = prepay(payer_client, DESKTOP_UA)
    assert response.status_code == 200, response.content
    body = response.json()
    order = RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])
    assert order.trade_type == RechargeOrder.TradeType.NATIVE and order.pay_url_is_valid()
    assert body["pay"] == {"kind": "qrcode", "url": order.pay_url}
    assert body["order_url"] == f"/orders/{order.out_trade_no}/" and "pay_params" not in body
    assert Trade.objects.get(out_trade_no=order.out_trade_no).trade_type == Trade.NATIVE


def test_a_phone_is_sent_to_wechats_h5_page_with_the_way_back_to_its_order(payer_client, settings):
    body = prepay(payer_client, PHONE_UA).json()
    order = RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])
    assert order.trade_type == RechargeOrder.TradeType.MWEB and body["pay"]["kind"] == "redirect"
    url = body["pay"]["url"]
    assert url.startswith(order.pay_url)
    back = parse_qs(urlsplit(url).query)["redirect_url"]
    assert back == [f"{settings.SITE_URL}/orders/{order.out_trade_no}/?from=h5"]


def test_inside_wechat_it_is_jsapi_as_before(payer_client):
    body = prepay(payer_client, WECHAT_UA).json()
    assert body["pay"]["kind"] == "jsapi" and body["pay"]["params"] == body["pay_params"]
    assert set(body["pay_params"]) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert RechargeOrder.objects.get(out_trade_no=body["out_trade_no"]).trade_type == RechargeOrder.TradeType.JSAPI


def test_a_phone_gets_a_qr_code_when_the_merchant_has_no_h5_pay(payer_client, settings):
    settings.WECHAT_H5_PAY = False
    body = prepay(payer_client, PHONE_UA).json()
    assert body["pay"]["kind"] == "qrcode" and "notice" not in body["pay"]
    assert RechargeOrder.objects.get(out_trade_no=body["out_trade_no"]).trade_type == RechargeOrder.TradeType.NATIVE


@pytest.mark.parametrize("api_version", ["v3", "v2"])
def test_a_phone_that_wechat_refuses_h5_gets_a_qr_code_and_the_page_says_why(payer_client, settings, api_version):
    settings.WECHAT_PAY_API = api_version
    Fault.objects.create(out_trade_no="", h5_no_auth=True)
    body = prepay(payer_client, PHONE_UA).json()
    assert body["pay"]["kind"] == "qrcode" and body["pay"]["notice"], body
    html = text(payer_client.get(body["order_url"] + "?notice=h5", HTTP_USER_AGENT=PHONE_UA))
    assert 'data-testid="h5-notice"' in html and "保存二维码" in html


def test_a_browser_may_not_ask_for_a_way_it_cannot_pay(payer_client):
    response = prepay(payer_client, DESKTOP_UA, amount="19.90", method="jsapi")
    assert response.status_code == 400 and not RechargeOrder.objects.exists()


def test_continuing_a_native_order_shows_its_qr_code_again_never_a_new_order(payer_client):
    placed = prepay(payer_client, DESKTOP_UA).json()
    again = payer_client.post(f"/payments/orders/{placed['out_trade_no']}/pay/", HTTP_USER_AGENT=DESKTOP_UA).json()
    assert again["out_trade_no"] == placed["out_trade_no"] and again["pay"]["kind"] == "qrcode"
    assert RechargeOrder.objects.count() == 1


# -- the order page of a Native order --------------------------------------------------------------


def test_a_pending_native_order_shows_its_qr_code_amount_account_and_countdown(member_client, member):
    with time_machine.travel(datetime(2026, 11, 2, 1, 30, tzinfo=UTC), tick=False):
        order = native_order(member, amount=1990, code_for=timedelta(minutes=14, seconds=59))
        response = member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=DESKTOP_UA)
    assert response.status_code == 200
    html = text(response)
    assert is_qr_of(svg_of(response.content.decode()), CODE_URL)
    assert '<p class="pay-qr__amount" data-testid="pay-qr-amount">¥19.90</p>' in html
    assert 'data-testid="pay-qr-account">wang-fang</strong>' in html and "请确认充值账户" in html
    assert order.out_trade_no in html
    assert '二维码 <span class="pay-qr__time">14:59</span> 后失效' in html and 'data-qr-seconds="899"' in html
    assert "请使用微信扫一扫，扫描二维码支付" in html and "微信支付（扫码支付）" in html
    # The QR code is the way to pay: no 继续支付 beside it; the page polls as any pending order's does.
    assert 'data-testid="pay-again"' not in html and 'data-status="pending"' in html and "js/order.js" in html
    # A desktop scans with a phone: nothing to save or copy.
    assert "保存二维码" not in html and "复制链接" not in html


def test_the_countdown_stops_at_the_orders_own_deadline(member_client, member):
    with time_machine.travel(datetime(2026, 11, 2, 1, 30, tzinfo=UTC), tick=False):
        order = native_order(member, code_for=timedelta(hours=2), expires_at=timezone.now() + timedelta(minutes=10))
        html = text(member_client.get(f"/orders/{order.out_trade_no}/"))
    assert '<span class="pay-qr__time">10:00</span>' in html and "请在 09:40 前扫码完成支付" in html


def test_on_a_phone_the_qr_code_can_be_saved_and_its_link_copied(member_client, member, settings):
    settings.WECHAT_SANDBOX = False
    order = native_order(member)
    html = text(member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=PHONE_UA))
    assert f'href="/orders/{order.out_trade_no}/qrcode.png"' in html and "保存二维码" in html
    assert f'data-action="copy-link" data-link="{CODE_URL}"' in html and "复制链接" in html
    assert "在沙箱中打开" not in html
    png = member_client.get(f"/orders/{order.out_trade_no}/qrcode.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert png["Content-Disposition"] == f'attachment; filename="wxpay-{order.out_trade_no}.png"'
    assert "no-store" in png["Cache-Control"]


def test_under_the_sandbox_the_qr_code_can_be_opened_to_play_the_scan(member_client, member, settings):
    settings.WECHAT_SANDBOX = True
    order = native_order(member)
    html = text(member_client.get(f"/orders/{order.out_trade_no}/"))
    assert f'href="{CODE_URL}" target="_blank" rel="noopener" data-testid="sandbox-scan">在沙箱中打开（模拟扫码）' in html


def test_a_lapsed_qr_code_is_not_shown_nor_saved(member_client, member):
    order = native_order(member, code_for=timedelta(seconds=-1))
    html = text(member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=PHONE_UA))
    assert 'data-testid="pay-qr"' not in html and CODE_URL not in html
    assert member_client.get(f"/orders/{order.out_trade_no}/qrcode.png").status_code == 404


def test_a_lapsed_qr_code_of_an_order_still_open_offers_to_pay_again(member_client, member):
    order = native_order(member, code_for=timedelta(seconds=-1), expires_at=timezone.now() + timedelta(hours=1))
    html = text(member_client.get(f"/orders/{order.out_trade_no}/"))
    assert 'data-testid="pay-again"' in html and f'data-pay-url="/payments/orders/{order.out_trade_no}/pay/"' in html


def test_a_paid_native_order_shows_the_balance_and_no_qr_code(member_client, member):
    from payments import services

    order = native_order(member, amount=1000)
    services.apply_payment(order.out_trade_no, "4200000000202611020000000001", 1000, timezone.now())
    html = text(member_client.get(f"/orders/{order.out_trade_no}/"))
    assert "支付成功" in html and "当前余额 ¥10.00" in html and 'data-testid="pay-qr"' not in html


def test_someone_elses_order_page_and_qr_code_are_404(member_client):
    order = native_order(make_user("someone-else"))
    assert member_client.get(f"/orders/{order.out_trade_no}/").status_code == 404
    assert member_client.get(f"/orders/{order.out_trade_no}/qrcode.png").status_code == 404


def test_the_notice_that_h5_was_refused_is_the_pages_own_words(member_client, member):
    order = native_order(member)
    assert 'data-testid="h5-notice"' in text(member_client.get(f"/orders/{order.out_trade_no}/?notice=h5"))
    for forged in ("<script>alert(1)</script>", "x", ""):
        html = text(member_client.get(f"/orders/{order.out_trade_no}/", {"notice": forged}))
        assert 'data-testid="h5-notice"' not in html and "<script>alert" not in html


# -- back from H5, and links that must not be followed ---------------------------------------------


def test_back_from_h5_the_page_asks_whether_the_payment_was_made(member_client, member):
    order = h5_order(member, amount=3000)
    html = text(member_client.get(f"/orders/{order.out_trade_no}/?from=h5", HTTP_USER_AGENT=PHONE_UA))
    assert "请确认微信支付是否已完成" in html and 'role="alertdialog"' in html
    # Sent hidden: the page's script shows it once its buttons work (a tap before would do nothing).
    assert '<div class="h5-return" data-testid="h5-return" hidden>' in html and "{#" not in html
    assert 'data-testid="h5-paid">已完成支付</button>' in html and 'data-testid="h5-pay-again">继续支付</button>' in html
    assert f'data-pay-url="/payments/orders/{order.out_trade_no}/pay/"' in html and "微信支付（H5 支付）" in html
    # Without ?from=h5 it is the plain pending page, with its own 继续支付.
    html = text(member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=PHONE_UA))
    assert "请确认微信支付是否已完成" not in html and 'data-testid="pay-again"' in html


def test_back_from_h5_after_the_payment_landed_it_says_paid_and_asks_nothing(member_client, member):
    from payments import services

    order = h5_order(member, amount=3000)
    services.apply_payment(order.out_trade_no, "4200000000202611020000000002", 3000, timezone.now())
    html = text(member_client.get(f"/orders/{order.out_trade_no}/?from=h5"))
    assert "支付成功" in html and "请确认微信支付是否已完成" not in html


def test_from_h5_means_nothing_on_an_order_not_paid_by_h5(member_client, member):
    order = native_order(member)
    assert "请确认微信支付是否已完成" not in text(member_client.get(f"/orders/{order.out_trade_no}/?from=h5"))


@pytest.mark.parametrize("query", [{"redirect_url": EVIL}, {"next": EVIL}, {"from": "h5", "redirect_url": EVIL, "next": EVIL}])
def test_the_order_page_never_follows_a_url_from_its_address(member_client, member, query):
    for order in (native_order(member), h5_order(member)):
        response = member_client.get(f"/orders/{order.out_trade_no}/", query, HTTP_USER_AGENT=PHONE_UA)
        assert response.status_code == 200
        assert "evil.example" not in response.content.decode()


def test_the_order_pages_script_takes_no_url_from_the_address():
    """order.js reads the address only to ask for this same page again (replaceView) and to
    know that a pay flow just ended (?result=): every URL it goes to is the server's."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "static" / "js" / "order.js").read_text(encoding="utf-8")
    assert "redirect_url" not in source and "URLSearchParams" not in source and "searchParams" not in source
    assert source.count("window.location.search") == 2


def test_a_jsapi_orders_page_says_whether_it_is_inside_wechat(member_client, member):
    order = make_order(member, prepay_id="wx-1", prepay_expires_at=timezone.now() + timedelta(minutes=20))
    outside = text(member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=DESKTOP_UA))
    inside = text(member_client.get(f"/orders/{order.out_trade_no}/", HTTP_USER_AGENT=WECHAT_UA))
    assert 'data-trade-type="JSAPI"' in outside and "data-in-wechat" not in outside
    assert 'data-in-wechat="1"' in inside and 'data-testid="pay-again"' in inside


def test_the_qr_code_is_drawn_on_the_server_with_no_script_nor_style(member_client, member):
    order = native_order(member)
    svg = svg_of(member_client.get(f"/orders/{order.out_trade_no}/").content.decode())
    assert "<script" not in svg and " style=" not in svg  # the policy allows no inline style


def test_the_pages_that_leave_for_wechats_h5_page_send_their_origin_as_referer(member_client, member):
    """WeChat's H5 page checks the Referer against the merchant's H5 domain; Django's default
    policy (same-origin) would send none to wx.tenpay.com. Only the origin goes, not the path."""
    order = h5_order(member)
    for url in ("/recharge/", f"/orders/{order.out_trade_no}/?from=h5"):
        response = member_client.get(url, HTTP_USER_AGENT=PHONE_UA)
        assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert member_client.get("/orders/")["Referrer-Policy"] == "same-origin"  # the rest as before

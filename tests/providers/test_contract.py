"""The provider contract (docs/architecture.md#the-payment-seam), run against every provider
in payments.providers.PROVIDERS (the `pay` fixture, tests/providers/conftest.py) with the
sandbox over HTTP as WeChat: what a merchant sees through the provider's own interface, and
what the site's notify endpoint for that provider does with the notifies WeChat sends.

Notifies are the sandbox's own: it pays (or refunds) and posts the notify to a Receiver,
and the test posts those bytes and headers to `pay.notify_url(kind)`, as sent, tampered
with, again, or made by the sandbox for another merchant.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.utils import timezone

from devtools.wechat_sandbox import delivery as sandbox_delivery
from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.merchants import Merchant as SandboxMerchant
from devtools.wechat_sandbox.models import Trade
from orders.models import LedgerEntry, RechargeOrder, Refund
from payments.models import Notification
from payments.providers.base import (
    NO_BILL,
    ORDER_NOT_EXIST,
    ORDER_PAID,
    REFUND_NOT_EXIST,
    PayAction,
    RefundInfo,
    WeChatError,
)
from tests.factories import make_order, make_user
from tests.helpers import clear_of_midnight, pay_sign_verifies
from tests.payments.conftest import settle_sandbox_refunds
from wxproto import bill as wxbill
from wxproto import v2 as wxpay

OPENID = "oContractPayer00000000000001"
# How each provider tells WeChat a notify was received, and that its signature failed (send it
# again): (HTTP status, the body's return_code or code). A new provider adds its line.
RECEIVED = {"wechat_v2": (200, "SUCCESS"), "wechat_v3": (204, "")}
BAD_SIGNATURE = {"wechat_v2": (200, "FAIL"), "wechat_v3": (401, "FAIL")}
HOP_HEADERS = {"host", "content-length", "connection", "accept", "accept-encoding"}


def number() -> str:
    return "CT" + secrets.token_hex(8).upper()


def place(pay, out_trade_no: str, total: int = 1990, notify_url: str = "", at=None) -> str:
    at = at or timezone.now().replace(microsecond=0)
    return pay.prepay(
        out_trade_no=out_trade_no,
        total=total,
        openid=OPENID,
        description="余额充值",
        notify_url=notify_url or pay.notify_url("payment"),
        client_ip="127.0.0.1",
        time_start=at,
        time_expire=at + timedelta(minutes=30),
    )


def paid(pay, out_trade_no: str, total: int = 1990, notify_url: str = "") -> str:
    """Placed and paid at the sandbox's cashier; WeChat's transaction id."""
    assert sandbox_services.pay(place(pay, out_trade_no, total, notify_url), pay.appid) == Trade.SUCCESS
    return Trade.objects.get(out_trade_no=out_trade_no).transaction_id


def refund(pay, out_trade_no: str, out_refund_no: str, amount: int, total: int = 1990, notify_url: str = ""):
    return pay.refund(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        total=total,
        amount=amount,
        reason="用户申请退款",
        notify_url=notify_url or pay.notify_url("refund"),
    )


def told(table: dict[str, tuple[int, str]], pay) -> tuple[int, str]:
    assert pay.name in table, f"say in RECEIVED and BAD_SIGNATURE how {pay.name} answers a notify"
    return table[pay.name]


def raised(call, *args) -> WeChatError:
    with pytest.raises(WeChatError) as exc:
        call(*args)
    return exc.value


# -- prepay, query, close -------------------------------------------------------------------


def test_prepay_places_an_order_once_and_says_how_to_pay_it(pay):
    no, at = number(), timezone.now().replace(microsecond=0)
    prepay_id = place(pay, no, at=at)
    assert isinstance(prepay_id, str) and prepay_id
    assert place(pay, no, at=at) == prepay_id  # the same order again: the same trade, no second one
    action = pay.pay_action(prepay_id)
    assert isinstance(action, PayAction) and action.kind == PayAction.JSAPI == "jsapi"
    assert set(action.params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert (action.params["appId"], action.params["package"]) == (pay.appid, f"prepay_id={prepay_id}")
    assert pay_sign_verifies(action.params, pay.appid)


def test_query_tells_an_unpaid_order_from_a_paid_one(pay):
    no = number()
    prepay_id = place(pay, no)
    unpaid = pay.query(no)
    assert (unpaid.out_trade_no, unpaid.state, unpaid.is_paid, unpaid.transaction_id) == (no, "NOTPAY", False, "")
    assert sandbox_services.pay(prepay_id, pay.appid) == Trade.SUCCESS
    transaction_id = Trade.objects.get(out_trade_no=no).transaction_id
    trade = pay.query(no)
    assert (trade.state, trade.is_paid, trade.total, trade.transaction_id) == ("SUCCESS", True, 1990, transaction_id)
    assert (trade.appid, trade.mchid) == (pay.appid, settings.WECHAT_MCH_ID)
    assert trade.paid_at is not None and abs(trade.paid_at - timezone.now()) < timedelta(minutes=1)


def test_query_of_a_number_wechat_never_saw(pay):
    assert raised(pay.query, number()).kind == ORDER_NOT_EXIST


def test_an_unpaid_order_closes_and_a_paid_one_does_not(pay):
    unpaid, done = number(), number()
    place(pay, unpaid)
    assert pay.close(unpaid) is None
    assert pay.query(unpaid).state == "CLOSED"
    paid(pay, done)
    assert raised(pay.close, done).kind == ORDER_PAID
    assert pay.query(done).state == "SUCCESS"


# -- refunds ----------------------------------------------------------------------------------


def test_a_refund_is_accepted_then_settles(pay):
    no = number()
    paid(pay, no)
    accepted = refund(pay, no, no + "R1", 500)
    assert isinstance(accepted, RefundInfo) and accepted.refund_id
    assert accepted.state == Refund.Status.PROCESSING or accepted.is_final
    assert settle_sandbox_refunds() == (1 if accepted.state == Refund.Status.PROCESSING else 0)
    settled = pay.query_refund(no + "R1")
    assert (settled.state, settled.wechat_state, settled.amount, settled.out_trade_no) == (
        Refund.Status.SUCCESS,
        "SUCCESS",
        500,
        no,
    )
    assert (settled.out_refund_no, settled.refund_id) == (no + "R1", accepted.refund_id)


def test_query_refund_of_a_number_wechat_never_saw(pay):
    assert raised(pay.query_refund, number()).kind == REFUND_NOT_EXIST


def test_more_than_is_left_is_refused_for_good(pay):
    no = number()
    paid(pay, no)
    refund(pay, no, no + "R1", 1500)
    error = raised(refund, pay, no, no + "R2", 491)
    assert not error.retryable
    assert raised(pay.query_refund, no + "R2").kind == REFUND_NOT_EXIST  # nothing was refunded
    assert refund(pay, no, no + "R3", 490).amount == 490  # what is left still is


# -- notifies ---------------------------------------------------------------------------------


def captured(receiver) -> tuple[bytes, dict[str, str]]:
    """The one notify the sandbox sent to `receiver`: its body and headers."""
    sandbox_delivery.deliver_due()
    assert len(receiver.received) == 1
    return receiver.received[0][1], {k: v for k, v in receiver.headers[0].items() if k.lower() not in HOP_HEADERS}


def post(pay, kind: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Post a notify to the site's endpoint for this provider; how the site answered."""
    response = requests.post(pay.notify_url(kind), data=body, headers=headers, timeout=10)
    if not response.content:
        return response.status_code, ""
    if response.content.startswith(b"<"):
        return response.status_code, wxpay.parse_xml(response.content)["return_code"]
    return response.status_code, response.json()["code"]


def tampered(body: bytes) -> bytes:
    """One character changed in the body's longest token (a signature, a nonce or a ciphertext),
    near its end (in a ciphertext, its last block)."""
    token = max(re.finditer(rb"[A-Za-z0-9+/]{16,}", body), key=lambda m: len(m.group()))
    at = token.end() - 6
    return body[:at] + (b"B" if body[at : at + 1] == b"A" else b"A") + body[at + 1 :]


def logged(kind: str) -> list[tuple[str, bool | None]]:
    return list(Notification.objects.filter(kind=kind).order_by("pk").values_list("outcome", "signature_valid"))


def books(order: RechargeOrder) -> tuple:
    order.refresh_from_db()
    order.user.refresh_from_db()
    return order.status, order.user.balance, sorted(order.user.ledger_entries.values_list("kind", "amount"))


def foreign(monkeypatch, out_trade_no: str, field: str) -> None:
    """Make the sandbox's trade another merchant's (its appid or mch_id), whose notifies the
    sandbox still signs (v2) with our key: correctly signed, but not ours."""
    Trade.objects.filter(out_trade_no=out_trade_no).update(**{field: "wxf0reign000000001" if field == "appid" else "1900000999"})
    monkeypatch.setattr(
        sandbox_services, "merchant", lambda mch_id: SandboxMerchant(mch_id, settings.WECHAT_API_KEY, frozenset())
    )


def paid_order(pay, receiver) -> RechargeOrder:
    """A site order paid at the sandbox and credited by its payment notify."""
    order = make_order(make_user(openid=OPENID), amount=1990)
    wechat = receiver()
    paid(pay, order.out_trade_no, notify_url=wechat.url)
    assert post(pay, "payment", *captured(wechat)) == told(RECEIVED, pay)
    assert books(order)[:2] == (RechargeOrder.Status.PAID, 1990)
    return order


def test_a_payment_notify_credits_once_and_a_tampered_one_never(pay, receiver):
    order = make_order(make_user(openid=OPENID), amount=1990)
    wechat = receiver()
    transaction_id = paid(pay, order.out_trade_no, notify_url=wechat.url)
    body, headers = captured(wechat)
    unpaid = books(order)
    assert post(pay, "payment", tampered(body), headers) == told(BAD_SIGNATURE, pay)
    assert books(order) == unpaid == (RechargeOrder.Status.PENDING, 0, [])
    assert post(pay, "payment", body, headers) == told(RECEIVED, pay)
    credited = books(order)
    assert credited == (RechargeOrder.Status.PAID, 1990, [(LedgerEntry.Kind.RECHARGE, 1990)])
    assert order.transaction_id == transaction_id
    assert post(pay, "payment", body, headers) == told(RECEIVED, pay)  # WeChat sends it again
    assert books(order) == credited
    assert logged("payment") == [("rejected", False), ("applied", True), ("duplicate", True)]


@pytest.mark.parametrize("field", ["appid", "mch_id"])
def test_a_payment_notify_for_another_merchant_is_not_applied(pay, receiver, monkeypatch, field):
    order = make_order(make_user(openid=OPENID), amount=1990)
    wechat = receiver()
    prepay_id = place(pay, order.out_trade_no, notify_url=wechat.url)
    foreign(monkeypatch, order.out_trade_no, field)
    appid = Trade.objects.get(out_trade_no=order.out_trade_no).appid
    assert sandbox_services.pay(prepay_id, appid) == Trade.SUCCESS
    post(pay, "payment", *captured(wechat))
    assert books(order) == (RechargeOrder.Status.PENDING, 0, [])
    assert logged("payment") == [("rejected", True)]  # signed correctly, and refused


def test_a_refund_notify_settles_once_and_a_tampered_one_never(pay, receiver):
    order = paid_order(pay, receiver)
    site_refund = order.start_refund(500, "用户申请退款")
    wechat = receiver()
    refund(pay, order.out_trade_no, site_refund.out_refund_no, 500, notify_url=wechat.url)
    settle_sandbox_refunds()
    body, headers = captured(wechat)
    debited = books(order)
    assert debited[1:] == (1490, sorted([(LedgerEntry.Kind.RECHARGE, 1990), (LedgerEntry.Kind.REFUND, -500)]))
    assert post(pay, "refund", tampered(body), headers) == told(BAD_SIGNATURE, pay)
    site_refund.refresh_from_db()
    assert site_refund.status == Refund.Status.PROCESSING and books(order) == debited
    assert post(pay, "refund", body, headers) == told(RECEIVED, pay)
    site_refund.refresh_from_db()
    assert site_refund.status == Refund.Status.SUCCESS
    settled = books(order)
    assert settled == (RechargeOrder.Status.REFUNDED, *debited[1:]) and order.refunded_amount == 500
    assert post(pay, "refund", body, headers) == told(RECEIVED, pay)
    assert books(order) == settled
    assert logged("refund") == [("rejected", False), ("applied", True), ("duplicate", True)]


def test_a_refund_notify_for_another_merchant_is_not_applied(pay, receiver, monkeypatch):
    order = paid_order(pay, receiver)
    site_refund = order.start_refund(500, "用户申请退款")
    wechat = receiver()
    refund(pay, order.out_trade_no, site_refund.out_refund_no, 500, notify_url=wechat.url)
    foreign(monkeypatch, order.out_trade_no, "mch_id")
    settle_sandbox_refunds()
    post(pay, "refund", *captured(wechat))
    site_refund.refresh_from_db()
    assert site_refund.status == Refund.Status.PROCESSING and books(order)[1] == 1490
    assert logged("refund") == [("rejected", True)]


# -- the bill ---------------------------------------------------------------------------------


def test_the_days_bill_has_the_days_trade(pay):
    with clear_of_midnight() as today:
        no = number()
        transaction_id = paid(pay, no, 1234)
        bill = wxbill.parse(pay.download_bill(today), today)
    rows = [row for row in bill.rows if row.out_trade_no == no]
    assert [(row.kind, row.trade_state, row.amount, row.transaction_id) for row in rows] == [
        (wxbill.PAYMENT, "SUCCESS", 1234, transaction_id)
    ]
    assert (rows[0].appid, rows[0].mch_id) == (pay.appid, settings.WECHAT_MCH_ID)
    assert (bill.count, bill.paid) == (1, 1234)


def test_a_day_with_nothing_has_no_bill(pay):
    with clear_of_midnight() as today:
        assert raised(pay.download_bill, today).kind == NO_BILL
        assert raised(pay.download_bill, today - timedelta(days=1)).kind == NO_BILL

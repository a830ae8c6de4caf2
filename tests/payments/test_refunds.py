"""Refunds: started by an operator, debited at once, finished by WeChat (the sandbox, over HTTP)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from devtools.wechat_sandbox.models import Fault, Trade
from devtools.wechat_sandbox.models import Refund as SandboxRefund
from orders.models import LedgerEntry, RechargeOrder, Refund, RefundRefused
from payments import services
from payments.models import Incident, Notification
from payments.sweeper import run_pass
from tests.factories import make_order, make_user
from tests.helpers import notify_xml, wechat_code
from tests.payments.conftest import settle_sandbox_refunds
from wxproto import v2 as wxpay

pytestmark = pytest.mark.django_db(transaction=True)
REFUND_NOTIFY = "/payments/wechat/refund-notify/"


def balance(order: RechargeOrder) -> int:
    order.user.refresh_from_db()
    return order.user.balance


def abnormal_refund(order: RechargeOrder, amount: int) -> Refund:
    """A refund WeChat ends CHANGE (退款异常: the user's card refused the money), learnt by refundquery."""
    Fault.objects.create(out_trade_no=order.out_trade_no, end_state="CHANGE")
    refund = services.request_refund(order, amount, "用户申请")
    settle_sandbox_refunds()
    refund = services.sync_refund(refund)
    assert refund.status == Refund.Status.ABNORMAL
    return refund


def wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_partial_refund_debits_at_once_and_settles_from_the_refund_notify(paid_order, delivery_worker):
    order = paid_order("10.00")
    operator = make_user("operator", is_staff=True)
    refund = services.request_refund(order, 500, "用户申请退款", operator)
    # Debited when requested: the money cannot be spent while WeChat refunds it.
    assert refund.status == Refund.Status.PROCESSING and refund.accepted and refund.refund_id
    assert balance(order) == 500
    debit = LedgerEntry.objects.get(refund=refund)
    assert (debit.kind, debit.amount, debit.balance_after, debit.operator) == ("refund", -500, 500, operator)
    assert SandboxRefund.objects.get(out_refund_no=refund.out_refund_no).refund_fee == 500

    delivery_worker()  # the sandbox settles the refund and posts its notify to our endpoint
    assert wait_for(lambda: Refund.objects.get(pk=refund.pk).status == Refund.Status.SUCCESS)
    order.refresh_from_db()
    assert (order.status, order.refunded_amount, order.status_text) == (RechargeOrder.Status.REFUNDED, 500, "部分退款")
    log = Notification.objects.get(kind="refund")
    assert (log.outcome, log.signature_valid, log.out_refund_no) == ("applied", True, refund.out_refund_no)
    assert balance(order) == 500 and LedgerEntry.objects.filter(refund=refund).count() == 1


def test_the_rest_of_an_order_can_be_refunded_and_then_it_reads_fully_refunded(paid_order):
    order = paid_order("10.00")
    first = services.request_refund(order, 300, "部分")
    second = services.request_refund(order, order.refundable_amount(), "其余")
    assert second.amount == 700 and balance(order) == 0
    settle_sandbox_refunds()
    for refund in (first, second):
        assert services.sync_refund(refund).status == Refund.Status.SUCCESS  # refundquery
    order.refresh_from_db()
    assert (order.refunded_amount, order.status_text) == (1000, "已退款")
    with pytest.raises(RefundRefused, match="可退金额"):
        services.request_refund(order, 1, "再退")


def test_refundquery_says_processing_until_wechat_settles(paid_order, settings):
    settings.SANDBOX_NOTIFY_TIME_SCALE = 1.0  # the sandbox settles 2 s later, not 0.05 s: time to see it processing
    order = paid_order("10.00")
    refund = services.request_refund(order, 1000, "全部退款")
    assert services.sync_refund(refund).status == Refund.Status.PROCESSING
    settle_sandbox_refunds()
    assert services.sync_refund(refund).status == Refund.Status.SUCCESS
    assert services.sync_refund(refund).status == Refund.Status.SUCCESS  # asking again changes nothing
    order.refresh_from_db()
    assert order.refunded_amount == 1000 and balance(order) == 0


def test_a_closed_refund_gives_the_balance_back_with_a_ledger_row(paid_order):
    order = paid_order("10.00")
    Fault.objects.create(out_trade_no=order.out_trade_no, end_state="REFUNDCLOSE")
    refund = services.request_refund(order, 400, "用户申请")
    assert balance(order) == 600
    settle_sandbox_refunds()
    assert services.sync_refund(refund).status == Refund.Status.CLOSED
    assert balance(order) == 1000
    back = LedgerEntry.objects.get(refund=refund, kind=LedgerEntry.Kind.REFUND_RETURN)
    assert (back.amount, back.balance_after) == (400, 1000)
    order.refresh_from_db()
    assert order.refunded_amount == 0 and order.status == RechargeOrder.Status.PAID
    assert order.refundable_amount() == 1000


def test_an_abnormal_refund_stays_debited_and_is_an_incident(paid_order):
    order = paid_order("10.00")
    refund = abnormal_refund(order, 400)
    assert balance(order) == 600
    incident = Incident.objects.get(kind=Incident.Kind.REFUND_ABNORMAL)
    assert incident.refund == refund and incident.order == order and "商户平台" in incident.message


def test_an_abnormal_refund_resolved_at_wechat_later_settles_as_a_success(paid_order):
    """CHANGE is not final: the merchant resolves it in the merchant platform (退款到其他账户)
    and WeChat then says SUCCESS. reconcile_orders keeps asking, hourly, and settles it as a
    success (not a conflict); its incident is closed."""
    order = paid_order("10.00")
    refund = abnormal_refund(order, 400)
    incident = Incident.objects.get(kind=Incident.Kind.REFUND_ABNORMAL)
    run_pass()  # WeChat still says CHANGE: it stays 退款异常, asked again within the hour
    refund.refresh_from_db()
    assert refund.status == Refund.Status.ABNORMAL
    # The merchant resolves it at WeChat.
    SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).update(
        state=SandboxRefund.SUCCESS, success_time=timezone.now()
    )
    with time_machine.travel(timezone.now() + timedelta(minutes=61), tick=True):
        assert run_pass().refunds_settled == 1
    refund.refresh_from_db()
    order.refresh_from_db()
    incident.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS and order.refunded_amount == 400 and balance(order) == 600
    assert incident.resolved_at is not None and not Incident.objects.filter(kind=Incident.Kind.REFUND_CONFLICT).exists()
    assert LedgerEntry.objects.filter(refund=refund).count() == 1  # the debit only: no money moved twice


def test_an_abnormal_refund_an_operator_handled_then_reported_successful_is_a_conflict_to_check(paid_order):
    """An operator marked the 退款异常 handled (perhaps giving the balance back by hand); a
    later SUCCESS may mean the user has the money twice: an incident says so."""
    order = paid_order("10.00")
    refund = abnormal_refund(order, 400)
    operator = make_user("caiwu", is_staff=True)
    Incident.objects.get(kind=Incident.Kind.REFUND_ABNORMAL).resolve(operator, "已手动退回余额")
    refund.refresh_from_db()
    assert services.settle_refund(refund, Refund.Status.SUCCESS).outcome == "applied"
    conflict = Incident.objects.get(kind=Incident.Kind.REFUND_CONFLICT)
    assert conflict.refund == refund and "两次" in conflict.message


def test_an_abnormal_refund_that_wechat_later_says_closed_is_a_conflict(paid_order):
    order = paid_order("10.00")
    refund = abnormal_refund(order, 400)
    SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).update(state=SandboxRefund.REFUNDCLOSE)
    assert services.sync_refund(refund).status == Refund.Status.ABNORMAL  # not given back on its own
    assert Incident.objects.filter(kind=Incident.Kind.REFUND_CONFLICT, refund=refund).exists()
    assert balance(order) == 600


def test_a_refund_wechat_refuses_gives_the_balance_back(paid_order):
    order = paid_order("10.00")
    # Refunded already in the merchant platform, behind our back: WeChat refuses (v2 ERROR, v3 INVALID_REQUEST).
    Trade.objects.filter(out_trade_no=order.out_trade_no).update(refunded_fee=1000, state=Trade.REFUND)
    refund = services.request_refund(order, 500, "用户申请")
    assert refund.status == Refund.Status.FAILED and wechat_code("ERROR", "INVALID_REQUEST") in refund.last_error
    assert balance(order) == 1000
    assert LedgerEntry.objects.filter(refund=refund).count() == 2  # the debit and its return


@pytest.mark.parametrize("outage", ["systemerror", "network"])
def test_while_wechat_is_down_the_refund_waits_and_is_retried_with_the_same_number(paid_order, settings, outage):
    order = paid_order("10.00")
    pay_base = settings.WECHAT_PAY_BASE_URL
    if outage == "systemerror":
        Fault.objects.create(out_trade_no=order.out_trade_no, systemerror_endpoints="refund")
    else:
        settings.WECHAT_PAY_BASE_URL = "http://127.0.0.1:9/"  # nothing listens there
    refund = services.request_refund(order, 500, "用户申请")
    assert refund.status == Refund.Status.PROCESSING and not refund.accepted and refund.last_error
    assert balance(order) == 500 and not SandboxRefund.objects.exists()

    Fault.objects.all().delete()
    settings.WECHAT_PAY_BASE_URL = pay_base
    result = run_pass()  # reconcile_orders sends it again
    assert result.failed == 0
    refund.refresh_from_db()
    assert refund.accepted and not refund.last_error
    assert list(SandboxRefund.objects.values_list("out_refund_no", flat=True)) == [refund.out_refund_no]
    settle_sandbox_refunds()
    services.sync_refund(refund)
    order.refresh_from_db()
    assert order.refunded_amount == 500 and balance(order) == 500
    assert SandboxRefund.objects.count() == 1


def test_sending_the_same_refund_again_never_refunds_twice(paid_order):
    order = paid_order("10.00")
    refund = services.request_refund(order, 500, "用户申请")
    services.send_refund(refund)
    services.send_refund(refund)
    assert SandboxRefund.objects.filter(out_refund_no=refund.out_refund_no).count() == 1
    assert Trade.objects.get(out_trade_no=order.out_trade_no).refunded_fee == 500


# -- the operator's rules -----------------------------------------------------------------------


@pytest.fixture
def paid_locally(client, db):
    """A ¥10 order paid by a verified notify (no WeChat call needed to refuse a refund)."""
    user = make_user("owner", openid="oOwner")
    order = make_order(user, amount=1000)
    client.post("/payments/wechat/notify/", notify_xml(order.out_trade_no, 1000), content_type="text/xml")
    order.refresh_from_db()
    return order


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (1001, "可退金额"),
        (0, "大于 0"),
        (-100, "大于 0"),
    ],
)
def test_refunds_outside_the_rules_are_refused_with_a_reason(paid_locally, amount, message):
    with pytest.raises(RefundRefused, match=message):
        paid_locally.start_refund(amount, "原因")
    assert not Refund.objects.exists() and balance(paid_locally) == 1000


def test_a_refund_needs_a_reason(paid_locally):
    with pytest.raises(RefundRefused, match="原因"):
        paid_locally.start_refund(100, "   ")


def test_a_refund_cannot_take_more_than_the_paid_money_left_unspent(paid_locally):
    from orders.models import LedgerEntry as Ledger

    Ledger.adjust(paid_locally.user_id, -800, "已消费", operator=None)
    with pytest.raises(RefundRefused, match=r"可退金额 ¥2.00（未消费的本金）"):
        paid_locally.start_refund(500, "原因")
    assert not Refund.objects.exists() and balance(paid_locally) == 200


@pytest.mark.parametrize("status", [RechargeOrder.Status.PENDING, RechargeOrder.Status.CLOSED])
def test_only_paid_orders_can_be_refunded(db, status):
    order = make_order(make_user("p", openid="oP"), amount=1000, status=status)
    with pytest.raises(RefundRefused, match="只有已支付的订单可以退款"):
        order.start_refund(100, "原因")


def test_an_order_takes_at_most_fifty_refunds(paid_locally):
    for _ in range(RechargeOrder.MAX_REFUNDS):
        paid_locally.start_refund(1, "小额")
    with pytest.raises(RefundRefused, match="最多退款 50 次"):
        paid_locally.start_refund(1, "第 51 次")
    assert Refund.objects.count() == 50 and balance(paid_locally) == 950


def test_a_double_submission_of_one_refund_form_makes_one_refund(paid_locally):
    number = Refund.new_out_refund_no()
    paid_locally.start_refund(500, "原因", out_refund_no=number)
    with pytest.raises(RefundRefused, match="请勿重复提交"):
        paid_locally.start_refund(500, "原因", out_refund_no=number)
    assert Refund.objects.count() == 1 and balance(paid_locally) == 500


# -- the refund notify -------------------------------------------------------------------------


def refund_notify(refund: Refund, status: str = "SUCCESS", key: str | None = None, **overrides) -> bytes:
    order = refund.order
    info = {
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "refund_id": refund.refund_id or "50300000000000000001",
        "out_refund_no": refund.out_refund_no,
        "total_fee": str(order.amount),
        "refund_fee": str(refund.amount),
        "settlement_refund_fee": str(refund.amount),
        "refund_status": status,
        "success_time": "2026-11-23 12:00:00",
        "refund_recv_accout": "支付用户的零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
        **overrides,
    }
    fields = {
        "return_code": "SUCCESS",
        "appid": settings.WECHAT_APPID,
        "mch_id": settings.WECHAT_MCH_ID,
        "nonce_str": wxpay.nonce(),
        "req_info": wxpay.encrypt_req_info(wxpay.to_xml(info, root="root"), key or settings.WECHAT_API_KEY),
    }
    return wxpay.to_xml(fields).encode()


def post(client, body: bytes) -> str:
    response = client.post(REFUND_NOTIFY, body, content_type="text/xml")
    assert response.status_code == 200
    return wxpay.parse_xml(response.content)["return_code"]


@pytest.fixture
def processing(paid_locally):
    return paid_locally.start_refund(500, "用户申请")


def test_a_refund_notify_settles_once_however_often_it_comes(client, processing):
    body = refund_notify(processing)
    assert [post(client, body) for _ in range(3)] == ["SUCCESS"] * 3
    processing.refresh_from_db()
    order = processing.order
    order.refresh_from_db()
    assert processing.status == Refund.Status.SUCCESS and order.refunded_amount == 500
    assert list(Notification.objects.filter(kind="refund").order_by("pk").values_list("outcome", flat=True)) == [
        "applied",
        "duplicate",
        "duplicate",
    ]


def test_a_forged_refund_notify_is_recorded_and_never_applied(client, processing):
    assert post(client, refund_notify(processing, key="f" * 32)) == "FAIL"
    processing.refresh_from_db()
    assert processing.status == Refund.Status.PROCESSING
    log = Notification.objects.get(kind="refund")
    assert (log.outcome, log.signature_valid) == ("rejected", False)


def test_without_a_v2_api_key_a_refund_notify_encrypted_with_the_empty_key_is_refused(client, processing, settings):
    settings.WECHAT_API_KEY = ""  # a merchant on API v3 alone: anyone could encrypt with the empty key
    assert post(client, refund_notify(processing, status="REFUNDCLOSE")) == "FAIL"
    processing.refresh_from_db()
    assert processing.status == Refund.Status.PROCESSING
    log = Notification.objects.get(kind="refund")
    assert (log.outcome, log.signature_valid) == ("rejected", False)


def test_a_refund_notify_for_an_unknown_refund_is_an_incident(client, processing):
    body = refund_notify(processing, out_refund_no="RF00000000000000000000000000")
    assert post(client, body) == "FAIL"
    assert post(client, body) == "FAIL"
    incident = Incident.objects.get()
    assert incident.kind == Incident.Kind.UNKNOWN_REFUND and incident.occurrences == 2
    assert Notification.objects.filter(incident=incident).count() == 2


def test_a_refund_notify_with_another_amount_is_an_incident_and_changes_nothing(client, processing):
    assert post(client, refund_notify(processing, refund_fee="400")) == "FAIL"
    processing.refresh_from_db()
    assert processing.status == Refund.Status.PROCESSING
    assert Incident.objects.get().kind == Incident.Kind.REFUND_CONFLICT


def test_a_refund_notify_that_contradicts_a_settled_refund_is_an_incident(client, processing):
    assert post(client, refund_notify(processing, "REFUNDCLOSE")) == "SUCCESS"
    assert balance(processing.order) == 1000
    assert post(client, refund_notify(processing, "SUCCESS")) == "SUCCESS"  # nothing to retry: for an operator
    processing.refresh_from_db()
    assert processing.status == Refund.Status.CLOSED and balance(processing.order) == 1000
    assert Incident.objects.get().kind == Incident.Kind.REFUND_CONFLICT
    assert Notification.objects.order_by("-pk").first().outcome == "incident"


def test_a_refund_that_ended_meanwhile_is_never_sent_again(paid_locally):
    from unittest import mock

    from payments import wechat

    refund = paid_locally.start_refund(500, "用户申请")
    stale = Refund.objects.get(pk=refund.pk)  # a runner read it while it was still 处理中
    services.settle_refund(refund, Refund.Status.FAILED)  # WeChat refused it: the balance came back
    with mock.patch.object(wechat.Pay, "refund") as sent:
        services.send_refund(stale)
        stale.accept("50300000000000000001")
    assert not sent.called
    stale.refresh_from_db()
    assert stale.status == Refund.Status.FAILED and not stale.accepted and balance(paid_locally) == 1000


def test_a_fault_of_ours_while_sending_a_refund_leaves_it_on_the_books_for_the_sweeper(paid_order, monkeypatch):
    """An error of our own while sending (not a WeChat answer) is no error page with a refund
    half-told: the refund is 处理中 with the error noted, and the sweeper sends it."""
    from payments.providers import provider

    order = paid_order("10.00")
    pay = type(provider(order.channel))
    real = pay.refund

    def broken(self, **kwargs):
        raise TypeError("a bug of ours")

    monkeypatch.setattr(pay, "refund", broken)
    refund = services.request_refund(order, 300, "用户申请")
    refund.refresh_from_db()
    assert (refund.status, refund.accepted, refund.last_error) == (
        Refund.Status.PROCESSING,
        False,
        "发送失败（本站错误），稍后自动重试",
    )
    assert balance(order) == 700
    monkeypatch.setattr(pay, "refund", real)
    refund = services.send_refund(refund)  # as the sweeper does, with the same out_refund_no
    assert refund.accepted and refund.refund_id

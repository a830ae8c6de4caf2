"""An incident carries its fix: the incident's page offers what settles its kind (WeChat asked
again about its refund or its order, through the same services as everywhere), or an
acknowledgement; a note is required, the fix is in the audit log, and an incident another
operator resolved meanwhile is said."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from orders.models import RechargeOrder, Refund
from payments import services
from payments.models import Incident
from tests.admin import operator, paid_at_sandbox, payer_user, placed_at_sandbox, settled_order
from tests.factories import make_user


def resolver():
    return operator("ops", "payments.view_incident", "payments.change_incident")


def page(client, incident) -> str:
    return client.get(f"/admin/payments/incident/{incident.pk}/resolve/").content.decode()


@pytest.mark.django_db
def test_a_paid_after_close_offers_only_an_acknowledgement_and_needs_a_note():
    incident = Incident.report(
        Incident.Kind.PAID_AFTER_CLOSE, "关闭后仍收到付款，已入账", order=settled_order(make_user("m"), 1000)
    )
    user, client = resolver()
    assert 'data-testid="resolve"' in client.get(f"/admin/payments/incident/{incident.pk}/change/").content.decode()
    shown = page(client, incident)
    assert 'value="acknowledge"' in shown and 'value="sync_order"' not in shown and 'value="sync_refund"' not in shown
    refused = client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "acknowledge", "note": " "})
    assert "请写明处理说明" in refused.content.decode()
    incident.refresh_from_db()
    assert incident.is_open
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "acknowledge", "note": "已核实，款已入账"})
    incident.refresh_from_db()
    assert (incident.is_open, incident.resolution, incident.resolved_by) == (False, "已核实，款已入账", user)
    (row,) = AuditEntry.objects.filter(action="incident.resolve")
    assert row.reason == "已核实，款已入账"
    again = client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "acknowledge", "note": "再处理"})
    assert "这条异常已由他人处理" in again.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_refund_conflict_is_settled_by_asking_wechat_about_the_refund(sandbox_url):
    order = paid_at_sandbox(payer_user(), "20.00")
    refund = services.request_refund(order, 500, "顾客申请")
    assert refund.status in Refund.OPEN
    incident = Incident.report(Incident.Kind.REFUND_CONFLICT, "退款结果与本地记录不符", order=order, refund=refund)
    _, client = resolver()
    assert 'value="sync_refund"' in page(client, incident)
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "sync_refund", "note": "已向微信查询"})
    incident.refresh_from_db()
    assert not incident.is_open
    (row,) = AuditEntry.objects.filter(action="incident.resolve")
    assert row.changes["处理方式"].startswith("向微信查询这笔退款") and "退款状态" in row.changes


@pytest.mark.django_db(transaction=True)
def test_an_order_wechat_reported_paid_is_synced_from_its_incident(sandbox_url):
    from tests.admin import pay_at_sandbox

    order = placed_at_sandbox(payer_user("p2"), "12.00")
    pay_at_sandbox(order)
    incident = Incident.report(Incident.Kind.AMOUNT_MISMATCH, "金额不符；未入账", order=order)
    _, client = resolver()
    assert 'value="sync_order"' in page(client, incident)
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "sync_order", "note": "已向微信查询，按实收入账"})
    assert RechargeOrder.objects.get(pk=order.pk).status == RechargeOrder.Status.PAID
    assert AuditEntry.objects.get(action="incident.resolve").changes["订单状态"] == "已支付"


@pytest.mark.django_db
def test_without_the_permission_the_fix_is_refused_by_url():
    incident = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "x", order=settled_order(make_user("m2"), 1000))
    _, viewer = operator("viewer", "payments.view_incident")
    assert viewer.get(f"/admin/payments/incident/{incident.pk}/resolve/").status_code == 403
    assert viewer.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "acknowledge", "note": "n"}).status_code == 403


# -- an amount mismatch: WeChat took another amount than the order's -------------------------


def mismatched(payer, amount: str, taken: int, package: int | None = None) -> tuple[RechargeOrder, Incident]:
    """An order WeChat holds for `taken` fen (its trade says so) while ours says `amount`; paid
    in the sandbox, then asked about: nothing credited, an incident open (the real flow)."""
    from devtools.wechat_sandbox.models import Trade
    from tests.admin import pay_at_sandbox

    order = placed_at_sandbox(payer, amount, package)
    Trade.objects.filter(out_trade_no=order.out_trade_no).update(total_fee=taken)
    pay_at_sandbox(order)
    order = services.sync_order(order)
    assert not order.is_credited and order.paid_reported_at is not None
    return order, Incident.objects.get(kind=Incident.Kind.AMOUNT_MISMATCH, order=order)


def finance():
    return operator(
        "finance",
        "payments.view_incident",
        "payments.change_incident",
        "orders.refund_rechargeorder",
        "orders.view_rechargeorder",
    )


@pytest.mark.django_db(transaction=True)
def test_an_amount_mismatch_is_credited_as_wechat_took_it(sandbox_url):
    payer = payer_user("mm1")
    order, incident = mismatched(payer, "20.00", 2001)
    user, client = finance()
    shown = page(client, incident)
    assert 'value="credit_taken"' in shown and 'value="refund_taken"' in shown and "¥20.00" in shown
    assert " checked" not in shown  # a money fix is never the default
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "credit_taken", "note": "微信实收 20.01，按实收入账"})
    order.refresh_from_db()
    payer.refresh_from_db()
    assert (order.status, order.amount, payer.balance) == (RechargeOrder.Status.PAID, 2001, 2001)
    incident.refresh_from_db()
    assert (incident.is_open, incident.resolved_by) == (False, user)
    settle = AuditEntry.objects.get(action="order.settle_taken")
    assert (settle.object_id, settle.reason) == (str(order.pk), "微信实收 20.01，按实收入账")
    assert settle.changes["订单金额"] == {"from": "20.00", "to": "20.01"}
    # The order's story says who settled it, how and why.
    story = client.get(f"/admin/orders/rechargeorder/{order.pk}/change/").content.decode()
    assert "按微信实收处理订单" in story and "20.00 → 20.01" in story
    # Settled: the fixes that move money are gone.
    assert 'value="credit_taken"' not in page(client, incident)
    again = client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "credit_taken", "note": "再来"})
    assert "请选择处理方式" in again.content.decode()
    assert (
        RechargeOrder.objects.get(pk=order.pk).amount == 2001
        and AuditEntry.objects.filter(action="order.settle_taken").count() == 1
    )


@pytest.mark.django_db(transaction=True)
def test_an_amount_mismatch_is_refunded_whole_to_the_payer(sandbox_url):
    from devtools.wechat_sandbox.models import Trade

    payer = payer_user("mm2")
    order, incident = mismatched(payer, "20.00", 1999)
    _, client = finance()
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "refund_taken", "note": "用户要求退回"})
    order.refresh_from_db()
    payer.refresh_from_db()
    (refund,) = order.refunds.all()
    assert (order.amount, refund.amount, payer.balance) == (1999, 1999, 0)
    assert refund.status in (*Refund.OPEN, Refund.Status.SUCCESS)
    assert refund.refund_id  # WeChat accepted it: the refund's total matched what it holds
    assert Trade.objects.get(out_trade_no=order.out_trade_no).refunded_fee == 1999
    assert list(payer.ledger_entries.order_by("pk").values_list("kind", "amount")) == [("recharge", 1999), ("refund", -1999)]
    incident.refresh_from_db()
    assert not incident.is_open
    assert "退款" in AuditEntry.objects.get(action="order.settle_taken").changes


@pytest.mark.django_db(transaction=True)
def test_less_taken_than_a_package_costs_gives_no_bonus(sandbox_url):
    from offers.models import Package

    package = Package.objects.create(name="充50送10", price=5000, bonus=1000, position=1)
    payer = payer_user("mm3")
    order, incident = mismatched(payer, "", 4900, package=package.pk)
    _, client = finance()
    client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "credit_taken", "note": "少收 1 元，只入实收"})
    payer.refresh_from_db()
    assert (RechargeOrder.objects.get(pk=order.pk).amount, payer.balance) == (4900, 4900)


@pytest.mark.django_db(transaction=True)
def test_without_the_refund_permission_the_money_fixes_are_neither_shown_nor_taken(sandbox_url):
    payer = payer_user("mm4")
    order, incident = mismatched(payer, "20.00", 2001)
    _, client = resolver()
    shown = page(client, incident)
    assert 'value="credit_taken"' not in shown and 'value="refund_taken"' not in shown
    refused = client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "credit_taken", "note": "试试"})
    assert "请选择处理方式" in refused.content.decode()
    # Asking WeChat again finds the same amount: nothing credited, the incident stays open.
    synced = client.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "sync_order", "note": "再查一次"})
    assert "仍与订单金额不符" in synced.content.decode()
    incident.refresh_from_db()
    payer.refresh_from_db()
    assert incident.is_open and payer.balance == 0 and not RechargeOrder.objects.get(pk=order.pk).is_credited


@pytest.mark.django_db(transaction=True)
def test_two_operators_settling_one_mismatch_credit_it_once(sandbox_url):
    payer = payer_user("mm5")
    order, incident = mismatched(payer, "30.00", 3005)
    first, second = (
        finance()[1],
        operator("finance2", "payments.view_incident", "payments.change_incident", "orders.refund_rechargeorder")[1],
    )
    shown_to_second = page(second, incident)  # both have the page open
    assert 'value="refund_taken"' in shown_to_second
    first.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "credit_taken", "note": "入账"})
    told = second.post(f"/admin/payments/incident/{incident.pk}/resolve/", {"fix": "refund_taken", "note": "退回"})
    assert "已由他人处理" in told.content.decode() or "请选择处理方式" in told.content.decode()
    with pytest.raises(services.RefundRefused, match="订单已入账"):
        services.settle_mismatch(RechargeOrder.objects.get(pk=order.pk), services.MismatchSettled.REFUND, "退回")
    payer.refresh_from_db()
    assert payer.balance == 3005 and not RechargeOrder.objects.get(pk=order.pk).refunds.exists()

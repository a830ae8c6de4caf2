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

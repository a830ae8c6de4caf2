"""The operators' audit log, as an operator and an auditor see it: each action that moves money
or state leaves a row with who, when, from where, what changed and why; sign-ins and
permission changes too; nobody can change or delete a row from the admin, and the database
refuses an UPDATE; the roles hold their permissions after every migrate."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.test import Client

from audit import log as audit
from audit.models import AuditEntry
from orders.models import RechargeOrder
from tests.admin import operator, paid_at_sandbox, payer_user, refund_form, refund_url, settled_order
from tests.factories import PASSWORD, make_user
from tests.helpers import NEEDS_ROW_LOCKS, race
from wxrecharge import roles


def rows(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("pk"))


@pytest.mark.django_db(transaction=True)
def test_a_refund_through_the_admin_is_recorded_with_its_reason_and_figures(sandbox_url):
    order = paid_at_sandbox(payer_user(), "30.00")
    user, client = operator("fin", "orders.view_rechargeorder", "orders.refund_rechargeorder")
    form = {**refund_form(client, order), "amount": "10.00", "reason": "顾客到店申请退款"}
    client.post(refund_url(order), form, REMOTE_ADDR="10.1.2.3")
    (row,) = rows("order.refund")
    assert (row.actor, row.actor_name, row.address) == (user, "fin", "10.1.2.3")
    assert (row.object_type, row.object_id, row.object_repr) == ("orders.rechargeorder", str(order.pk), order.out_trade_no)
    assert row.changes["退款金额"] == "¥10.00" and row.changes["退款单号"] == form["out_refund_no"]
    assert row.reason == "顾客到店申请退款"


@pytest.mark.django_db
def test_a_balance_adjustment_records_the_balance_before_and_after():
    member = make_user("m1")
    settled_order(member, 2000)
    _, client = operator("fin2", "accounts.view_user", "accounts.change_user")
    page = client.get(f"/admin/accounts/user/{member.pk}/adjust/").content.decode()
    request_no = page.split('name="request_no" value="')[1].split('"')[0]
    client.post(f"/admin/accounts/user/{member.pk}/adjust/", {"amount": "-5.00", "reason": "补差价", "request_no": request_no})
    (row,) = rows("balance.adjust")
    assert row.changes == {"调整金额": "-5.00", "余额": {"from": "¥20.00", "to": "¥15.00"}} and row.reason == "补差价"


@pytest.mark.django_db(transaction=True)
def test_syncing_and_closing_orders_are_recorded_with_the_status_they_left(sandbox_url):
    from tests.admin import placed_at_sandbox

    order = placed_at_sandbox(payer_user(), "12.00")
    _, client = operator("ops", "orders.view_rechargeorder", "orders.sync_rechargeorder")
    changelist = "/admin/orders/rechargeorder/"
    client.post(changelist, {"action": "sync_selected", "_selected_action": [order.pk]})
    client.post(changelist, {"action": "close_selected", "_selected_action": [order.pk], "confirm": "yes", "reason": "用户放弃"})
    assert [(r.action, r.changes, r.reason) for r in AuditEntry.objects.filter(object_id=str(order.pk)).order_by("pk")] == [
        ("order.sync", {"状态": {"from": "待支付", "to": "仍待支付"}}, ""),
        ("order.close", {"状态": {"from": "待支付", "to": "已关闭"}}, "用户放弃"),
    ]
    assert RechargeOrder.objects.get(pk=order.pk).status == RechargeOrder.Status.CLOSED


@pytest.mark.django_db
def test_operators_signing_in_and_failing_to_are_recorded_members_are_not():
    make_user("boss", is_staff=True)
    make_user("member")
    Client().post("/admin/login/?next=/admin/", {"username": "boss", "password": "wrong"}, REMOTE_ADDR="10.9.9.9")
    Client().post("/admin/login/?next=/admin/", {"username": "boss", "password": PASSWORD})
    Client().post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert [(r.action, r.object_repr, r.address) for r in AuditEntry.objects.order_by("pk")] == [
        ("signin_failed", "boss", "10.9.9.9"),
        ("signin", "boss", "127.0.0.1"),
    ]


@pytest.mark.django_db
def test_a_role_given_to_a_staff_account_is_recorded():
    roles.sync_roles()
    clerk = make_user("clerk", is_staff=True)
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    data = {
        "username": "clerk",
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "is_staff": "on",
        "groups": [Group.objects.get(name=roles.SUPPORT).pk],
    }
    response = client.post(f"/admin/accounts/user/{clerk.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    (row,) = rows("user.permissions")
    assert (row.actor_name, row.object_repr, row.changes) == ("root", "clerk", {"角色增加": ["客服"]})


@pytest.mark.django_db
def test_nobody_changes_or_deletes_an_audit_row_from_the_admin():
    row = audit.record("export", object_repr="订单 2026-12-07")
    root = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    listing = client.get("/admin/audit/auditentry/").content.decode()
    assert "订单 2026-12-07" in listing and "增加" not in listing.split('id="changelist"')[0][-500:]
    assert client.get(f"/admin/audit/auditentry/{row.pk}/delete/").status_code == 403
    assert client.post(f"/admin/audit/auditentry/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    changed = client.post(f"/admin/audit/auditentry/{row.pk}/change/", {"reason": "改掉"})
    assert changed.status_code == 403
    assert client.post("/admin/audit/auditentry/", {"action": "delete_selected", "_selected_action": [row.pk]}).status_code in (
        200,
        302,
        403,
    )
    assert AuditEntry.objects.get(pk=row.pk).reason == ""
    with pytest.raises(PermissionError):
        row.delete()
    row.reason = "改掉"
    with pytest.raises(PermissionError):
        row.save()


@pytest.mark.django_db
def test_the_database_refuses_to_change_an_audit_row():
    row = audit.record("export", object_repr="退款 2026-12")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=row.pk).update(reason="改掉")
    assert AuditEntry.objects.get(pk=row.pk).reason == ""
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic():
            AuditEntry.objects.filter(pk=row.pk).delete()
        assert AuditEntry.objects.filter(pk=row.pk).exists()


@pytest.mark.django_db
def test_each_role_holds_its_permissions_and_is_put_back_in_step():
    roles.sync_roles()
    support, finance, admin_group = (Group.objects.get(name=n) for n in (roles.SUPPORT, roles.FINANCE, roles.ADMINISTRATOR))
    names = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()} for g in (support, finance, admin_group)
    }
    assert "accounts.unbind_wechat" in names["客服"] and "orders.refund_rechargeorder" not in names["客服"]
    assert {"orders.refund_rechargeorder", "accounts.change_user", "audit.export_data", "reconciliation.run_billday"} <= names[
        "财务"
    ]
    assert names["财务"] | names["客服"] <= names["管理员"] | {"accounts.unbind_wechat"}
    assert not any(n.startswith("sandbox.") for n in names["管理员"])
    support.permissions.add(*roles.permissions({"orders.refund_rechargeorder"}))  # by hand
    roles.sync_roles()
    assert not support.permissions.filter(codename="refund_rechargeorder").exists()


@pytest.mark.django_db
def test_a_support_clerk_sees_orders_and_members_and_may_not_refund():
    roles.sync_roles()
    order = settled_order(make_user("m2"), 1000)
    clerk = make_user("clerk2", is_staff=True)
    clerk.groups.add(Group.objects.get(name=roles.SUPPORT))
    client = Client()
    client.force_login(clerk)
    assert client.get(f"/admin/orders/rechargeorder/{order.pk}/change/").status_code == 200
    assert client.get(f"/admin/accounts/user/{order.user_id}/change/").status_code == 200
    assert client.get(refund_url(order)).status_code == 403
    assert client.get(f"/admin/accounts/user/{order.user_id}/adjust/").status_code == 403
    assert client.get("/admin/audit/auditentry/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_the_order_page_tells_the_orders_story_in_time_order(sandbox_url):
    order = paid_at_sandbox(payer_user(), "30.00")
    _, client = operator("fin3", "orders.view_rechargeorder", "orders.refund_rechargeorder")
    client.post(refund_url(order), {**refund_form(client, order), "amount": "10.00", "reason": "顾客申请"})
    page = client.get(f"/admin/orders/rechargeorder/{order.pk}/change/").content.decode()
    story = page[page.index('data-testid="timeline"') : page.index("</ol>", page.index('data-testid="timeline"'))]
    steps = re.findall(r"<b>(?:<a [^>]*>)?([^<]+)", story)
    assert steps[:3] == ["下单", "微信预支付", "已支付"]
    assert steps[3:] == ["余额充值", "发起退款", "余额退款"]
    assert "fin3" in story and "顾客申请" in story and "¥10.00" in story


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
@pytest.mark.django_db(transaction=True)
def test_two_operators_resolving_one_incident_at_once_one_wins_the_other_is_told():
    from payments.models import Incident

    incident = Incident.report(Incident.Kind.PAID_AFTER_CLOSE, "关闭后仍收到付款", order=settled_order(make_user("m9"), 1000))
    clients = [operator(name, "payments.view_incident", "payments.change_incident")[1] for name in ("ops-a", "ops-b")]

    def resolve(client, note):
        data = {"action": "resolve_selected", "_selected_action": [incident.pk], "confirm": "yes", "reason": note}
        return client.post("/admin/payments/incident/?state=all", data, follow=True).content.decode()

    # (Each page's own text: the test client's captured context is shared between threads.)
    pages = race([lambda c=c, n=n: resolve(c, n) for c, n in zip(clients, ("甲处理", "乙处理"), strict=True)])
    assert sorted("已将 1 条异常标记为已处理" in page for page in pages) == [False, True]
    assert sorted("已由他人处理" in page for page in pages) == [False, True]
    assert AuditEntry.objects.filter(action="incident.resolve").count() == 1


@pytest.mark.django_db
def test_support_and_finance_see_the_customers_page_not_the_account_form():
    roles.sync_roles()
    member = make_user("m3", openid="oM3")
    order = settled_order(member, 2500)
    for name, role in (("kefu", roles.SUPPORT), ("caiwu", roles.FINANCE)):
        staff = make_user(name, is_staff=True)
        staff.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(staff)
        page = client.get(f"/admin/accounts/user/{member.pk}/change/").content.decode()
        assert 'data-testid="customer"' in page and "¥25.00" in page and order.out_trade_no in page
        assert 'name="is_superuser"' not in page and 'name="groups"' not in page and 'name="password"' not in page
        refused = client.post(f"/admin/accounts/user/{staff.pk}/change/", {"username": name, "is_superuser": "on"})
        assert refused.status_code == 403
        staff.refresh_from_db()
        assert not staff.is_superuser
        assert ("调整余额" in page) is (role == roles.FINANCE)
        assert ("解绑微信" in page) is (role == roles.SUPPORT)
        orders = client.get(f"/admin/orders/rechargeorder/?user={member.pk}").content.decode()
        assert order.out_trade_no in orders


@pytest.mark.django_db
def test_an_administrator_gives_roles_but_not_the_superuser_flag():
    roles.sync_roles()
    boss = make_user("guanli", is_staff=True)
    boss.groups.add(Group.objects.get(name=roles.ADMINISTRATOR))
    clerk = make_user("clerk9", is_staff=True)
    root = make_user("root9", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    page = client.get(f"/admin/accounts/user/{clerk.pk}/change/").content.decode()
    assert 'name="groups"' in page and 'name="is_superuser"' not in page and 'name="user_permissions"' not in page
    assert 'data-testid="customer"' in client.get(f"/admin/accounts/user/{root.pk}/change/").content.decode()
    superuser_page = Client()
    superuser_page.force_login(root)
    assert 'name="is_superuser"' in superuser_page.get(f"/admin/accounts/user/{clerk.pk}/change/").content.decode()

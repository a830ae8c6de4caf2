"""The admin for each role, as its staff find it: what 客服, 财务 and 管理员 may open, and what
each is refused (by URL, not only by a missing button)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from audit import log as audit
from tests.admin import settled_order
from tests.factories import make_user
from wxrecharge import roles

pytestmark = pytest.mark.django_db

OPEN, REFUSED = 200, 403


@pytest.fixture
def world():
    roles.sync_roles()
    member = make_user("member", openid="oMember")
    order = settled_order(member, 3000)
    audit.record("export", object_repr="x")
    return {"member": member.pk, "order": order.pk}


def staff(role: str) -> Client:
    user = make_user(f"staff-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


PAGES = [
    # (url, 客服, 财务, 管理员)
    ("/admin/", OPEN, OPEN, OPEN),
    ("/admin/orders/rechargeorder/", OPEN, OPEN, OPEN),
    ("/admin/orders/rechargeorder/{order}/change/", OPEN, OPEN, OPEN),
    ("/admin/orders/rechargeorder/{order}/refund/", REFUSED, OPEN, OPEN),
    ("/admin/orders/rechargeorder/export/csv/", REFUSED, OPEN, OPEN),
    ("/admin/orders/ledgerentry/", OPEN, OPEN, OPEN),
    ("/admin/accounts/user/{member}/change/", OPEN, OPEN, OPEN),
    ("/admin/accounts/user/{member}/adjust/", REFUSED, OPEN, OPEN),
    ("/admin/accounts/user/{member}/unbind/", OPEN, REFUSED, OPEN),
    ("/admin/accounts/user/add/", REFUSED, REFUSED, OPEN),
    ("/admin/audit/auditentry/", REFUSED, OPEN, OPEN),
    ("/admin/reconciliation/billday/", REFUSED, OPEN, OPEN),
    ("/admin/reconciliation/billday/liability/", REFUSED, OPEN, OPEN),
    ("/admin/wallet/apiclient/", REFUSED, REFUSED, OPEN),
    ("/admin/outbox/webhookendpoint/", REFUSED, REFUSED, OPEN),
    ("/admin/messaging/messagetemplate/", REFUSED, REFUSED, OPEN),
    ("/admin/auth/group/", REFUSED, REFUSED, OPEN),
]


@pytest.mark.parametrize("column, role", [(1, roles.SUPPORT), (2, roles.FINANCE), (3, roles.ADMINISTRATOR)])
def test_each_role_opens_its_pages_and_is_refused_the_others(world, column, role):
    client = staff(role)
    got = {}
    for row in PAGES:
        url = row[0].format(**world)
        got[url] = client.get(url).status_code
    expected = {row[0].format(**world): row[column] for row in PAGES}
    assert got == expected

"""What the admin walk-through found, as an operator sees it: a refused page in the admin's own
look, links only where they open, Chinese everywhere (permission pickers, audit rows, filter
titles), 最近动作 from the audit log, one name for the back office, and pages laid out with
the admin's own styles."""

from __future__ import annotations

import re
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory

from audit import log as audit
from audit.log import change, describe
from audit.models import AuditEntry
from orders.models import Refund
from payments.models import Incident
from tests.admin import operator, payer_user, settled_order
from tests.factories import make_user
from wxrecharge import roles
from wxrecharge.views import permission_denied

pytestmark = pytest.mark.django_db


def staff(role: str, username: str | None = None) -> tuple:
    roles.sync_roles()
    user = make_user(username or f"staff-{role}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return user, client


def options(html: str, name: str) -> list[str]:
    """The texts of a <select name=...>'s options."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select {name}"
    return re.findall(r"<option[^>]*>([^<]*)</option>", select[1])


# -- 1. a refused admin page --------------------------------------------------------------------


def test_a_refused_admin_page_is_the_admins_own_with_a_way_home():
    _, client = staff(roles.FINANCE)
    response = client.get("/admin/outbox/delivery/?status=pending")
    html = response.content.decode()
    assert response.status_code == 403
    assert "你没有权限访问此页面" in html and 'data-testid="admin-forbidden"' in html
    assert re.search(r'<a href="/admin/">返回首页</a>', html) and "<h1>没有权限</h1>" in html
    assert settings.OTP_TOTP_ISSUER in html  # the admin's header
    assert "返回充值" not in html and "weui" not in html and "余额 ¥" not in html


def test_a_refused_member_page_is_still_the_member_sites():
    response = permission_denied(RequestFactory().get("/recharge/"), None)
    html = response.content.decode()
    assert response.status_code == 403 and "返回充值" in html and "weui" in html


# -- 2. the health panel's links ----------------------------------------------------------------


def test_the_health_panel_links_only_to_lists_this_operator_may_open():
    _, client = staff(roles.FINANCE)
    html = client.get("/admin/").content.decode()
    deliveries = re.search(r'data-testid="health-deliveries"[^>]*>(.*?)</li>', html, re.S)[1]
    assert "Webhook 推送失败" in deliveries and "<a" not in deliveries  # 财务 may not open deliveries
    assert 'href="/admin/payments/incident/?state=open">未处理异常</a>' in html
    assert '<a href="/admin/common/heartbeat/">后台任务</a>' in html
    for href in re.findall(r'data-testid="health-[^"]+"[^>]*>\s*<a href="([^"]+)"', html):
        assert client.get(href.replace("&amp;", "&")).status_code == 200, href


def test_a_superuser_gets_every_link(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert re.search(r'data-testid="health-deliveries"[^>]*>\s*<a href="/admin/outbox/delivery/\?status=pending">', html)


# -- 3. permission pickers ----------------------------------------------------------------------


def test_the_role_and_user_forms_offer_no_permissions_of_django_otps_devices(admin_client):
    group = Group.objects.create(name="测试角色")
    for url, name in ((f"/admin/auth/group/{group.pk}/change/", "permissions"), ("/admin/auth/group/add/", "permissions")):
        texts = options(admin_client.get(url).content.decode(), name)
        assert any("用户" in text for text in texts)
        assert not [text for text in texts if re.search(r"otp|TOTP|static device|身份验证器|恢复码", text, re.I)]
    staff_user = make_user("kefu1", is_staff=True)
    texts = options(admin_client.get(f"/admin/accounts/user/{staff_user.pk}/change/").content.decode(), "user_permissions")
    assert texts and not [text for text in texts if re.search(r"otp|TOTP|身份验证器|恢复码", text, re.I)]


def test_a_role_saved_from_its_page_keeps_its_other_permissions(admin_client):
    roles.sync_roles()
    group = Group.objects.get(name=roles.SUPPORT)
    before = set(group.permissions.values_list("pk", flat=True))
    response = admin_client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": group.name, "permissions": sorted(before)}, follow=True
    )
    assert response.status_code == 200 and set(group.permissions.values_list("pk", flat=True)) == before


# -- 4. 最近动作 ----------------------------------------------------------------------------------


def test_the_start_page_lists_the_operators_own_latest_actions():
    user, client = staff(roles.FINANCE, "caiwu1")
    other = make_user("someone-else", is_staff=True)
    member = payer_user("zhangsan")
    audit.record("balance.adjust", actor=user, obj=member, changes={"调整金额": "+5.00"}, reason="活动补偿")
    audit.record("export", actor=other, object_repr="别人的导出")
    html = client.get("/admin/").content.decode()
    box = html[html.index('data-testid="my-actions"') :]
    box = box[: box.index("</div>")]
    assert "最近动作" in box and "<b>调整余额</b> zhangsan" in box and "别人的导出" not in box
    assert "无可选的" not in html and "None available" not in html
    link = re.search(r'<a href="([^"]+)">查看我的全部操作记录</a>', box)[1]
    assert link == f"/admin/audit/auditentry/?actor={user.pk}"
    listing = client.get(link).content.decode()
    assert "调整余额" in listing and "别人的导出" not in listing


def test_an_operator_without_actions_is_told_so_and_one_who_may_not_read_the_log_gets_no_link():
    with mock.patch("audit.signals.record"):  # signed in without the sign-in's own audit row
        _, client = operator("newcomer", "accounts.view_user")
    assert not AuditEntry.objects.exists()
    html = client.get("/admin/").content.decode()
    assert "暂无记录" in html and "无可选的" not in html
    user, client = operator("helper", "accounts.view_user")
    audit.record("user.unbind", actor=user, object_repr="lisi")
    html = client.get("/admin/").content.decode()
    assert "<b>解绑微信</b> lisi" in html and "查看我的全部操作记录" not in html


# -- 5. the audit log's object types and changes -------------------------------------------------


def test_describe_writes_mappings_as_key_value_pairs():
    assert describe({"q": "nobody-matches", "status__exact": "1"}) == "q：nobody-matches；status__exact：1"
    assert describe(change("¥1.00", "¥2.00")) == "¥1.00 → ¥2.00"
    assert describe(["客服", "财务"]) == "客服、财务"
    assert describe(12) == "12"


def test_the_audit_log_names_object_types_and_filters_in_chinese(admin_client):
    member = payer_user("zhangsan")
    entry = audit.record("user.change", obj=member, changes={"筛选": {"q": "nobody-matches"}})
    odd = audit.record("export", object_type="gone.model", object_repr="x")
    listing = admin_client.get("/admin/audit/auditentry/").content.decode()
    assert "筛选：q：nobody-matches" in listing and "{&#x27;q&#x27;" not in listing and "{'q'" not in listing
    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").content.decode()
    assert re.search(r"对象类型.*?<div class=\"readonly\">用户</div>", page, re.S) and "accounts.user" not in page
    page = admin_client.get(f"/admin/audit/auditentry/{odd.pk}/change/").content.decode()
    assert re.search(r"对象类型.*?<div class=\"readonly\">gone.model</div>", page, re.S)


# -- 9. the customer page ------------------------------------------------------------------------


def test_the_customer_page_draws_its_facts_and_tables_with_the_admins_styles():
    member = payer_user("zhangsan")
    settled_order(member, 2000)
    _, client = staff(roles.FINANCE)
    html = client.get(f"/admin/accounts/user/{member.pk}/change/").content.decode()
    assert 'data-testid="customer"' in html and "admin/css/forms.css" in html
    facts = html[html.index('data-testid="customer-facts"') : html.index("</fieldset>")]
    assert facts.count('<div class="flex-container"><label>') == 7
    assert re.search(r'<label>用户名：</label><div class="readonly"[^>]*>zhangsan</div>', facts)
    assert re.search(r'<label>余额：</label><div class="readonly" data-testid="customer-balance"><strong>¥20\.00</strong>', facts)
    # the orders and the ledger: each table in a box that scrolls sideways on a phone
    assert html.count('<div class="wx-table-scroll"><table class="wx-table">') == 2
    assert '<td class="wx-text">' in html


# -- 10. headings and the secret to type ---------------------------------------------------------


def test_the_secret_to_type_is_one_full_width_field(settings):
    settings.OPERATOR_2FA_REQUIRED = True
    user, client = operator("caiwu2", "orders.refund_rechargeorder")
    html = client.get("/admin/otp/setup/").content.decode()
    assert re.search(r'<input id="otp-secret" class="vTextField" type="text" readonly value="[A-Z2-7 ]{39}"', html)
    assert f"发行方 {settings.OTP_TOTP_ISSUER}" in html


# -- 11. the order's story -----------------------------------------------------------------------


def test_a_settled_refund_is_named_once_in_the_orders_story(admin_client):
    order = settled_order(payer_user("wangwu"), 3000)
    order.start_refund(1000, "顾客要求退款").settle(Refund.Status.SUCCESS)
    html = admin_client.get(f"/admin/orders/rechargeorder/{order.pk}/change/").content.decode()
    story = html[html.index('data-testid="timeline"') : html.index("</ol>", html.index('data-testid="timeline"'))]
    steps = re.findall(r"<b>(?:<a [^>]*>)?([^<]+)", story)
    assert "退款成功" in steps and "退款退款成功" not in story


# -- 12. resolving an incident ----------------------------------------------------------------------


def test_the_resolve_page_has_django_radio_buttons_and_cancel_button(admin_client):
    incident = Incident.report(Incident.Kind.UNKNOWN_ORDER, "未知订单", out_trade_no="20250101120000109999999999")
    html = admin_client.get(f"/admin/payments/incident/{incident.pk}/resolve/").content.decode()
    assert "admin/css/forms.css" in html
    assert '<div class="radiolist">' in html and '<ul class="radiolist">' not in html
    assert re.search(r'<a href="/admin/payments/incident/\d+/change/" class="closelink">取消</a>', html)


# -- 13. filter titles ------------------------------------------------------------------------------


def test_every_filter_title_says_按(admin_client):
    html = admin_client.get("/admin/orders/rechargeorder/").content.decode()
    titles = [re.sub(r"\s+", " ", title).strip() for title in re.findall(r"<summary>(.*?)</summary>", html, re.S)]
    assert titles and all(title.startswith("按 ") for title in titles), titles
    assert "以 " not in " ".join(titles)


# -- 14. one name ---------------------------------------------------------------------------------


def test_the_header_and_the_authenticator_app_use_one_name(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert f'<a href="/admin/">{settings.OTP_TOTP_ISSUER}</a>' in html
    assert f"<title>运营概览 | {settings.OTP_TOTP_ISSUER}</title>" in html
    assert "wxrecharge 运营后台" not in html

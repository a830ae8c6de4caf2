"""The admin in Chinese, Django's own parts included: permission names (renamed after every
migrate, wxrecharge/permissions.py), the JavaScript catalog of the two-box picker and the
calendar, the screen-reader headers of the start page, labels that capfirst would spoil, and
WeChat's bill states."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import django.contrib.admin
import pytest
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets, label_for_field
from django.contrib.auth.models import Permission
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from messaging.models import Message
from orders.models import RechargeOrder
from outbox.models import Event
from payments.models import Incident
from reconciliation.models import BillDay, BillRow
from tests.admin import settled_order
from tests.factories import make_user

pytestmark = pytest.mark.django_db
ADMIN_JS = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "js"
# What the outside check found on Chinese pages, and Django's other English defaults.
ENGLISH = ["Can add", "Can change", "Can delete", "Can view", "Model name", "Add link", "Change or view list link"]


def migrate_again() -> None:
    """What the end of every `migrate` does: post_migrate for each app (permissions included)."""
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")


# -- permission names --------------------------------------------------------------------------


def test_every_default_permission_has_a_chinese_name_after_migrate():
    # The test database was built without migrations: post_migrate ran once, as after a migrate.
    assert not Permission.objects.filter(name__startswith="Can ").exists()
    names = dict(Permission.objects.values_list("codename", "name"))
    assert names["add_user"] == "可以添加 用户"
    assert names["change_rechargeorder"] == "可以修改 充值订单"
    assert names["delete_package"] == "可以删除 充值套餐"
    assert names["view_incident"] == "可以查看 异常"
    # Django's own models and django-axes' are named in English; their Chinese is used.
    assert names["view_group"] == "可以查看 组" and names["add_logentry"] == "可以添加 日志记录"
    assert names["view_accessattempt"] == "可以查看 登录尝试"


def test_permissions_a_model_declares_keep_their_own_names():
    assert Permission.objects.get(codename="run_billday").name == "可重新对账"
    assert Permission.objects.get(codename="refund_rechargeorder").name == "可发起退款"


def test_the_permissions_of_a_new_model_are_named_in_chinese_by_the_migrate_that_makes_them():
    Permission.objects.filter(content_type__app_label="offers", content_type__model="package").delete()
    migrate_again()
    made = Permission.objects.filter(content_type__app_label="offers", content_type__model="package")
    assert sorted(made.values_list("name", flat=True)) == [
        "可以修改 充值套餐",
        "可以删除 充值套餐",
        "可以查看 充值套餐",
        "可以添加 充值套餐",
    ]


def test_an_english_name_left_by_an_earlier_migrate_is_renamed_and_a_second_run_changes_nothing():
    Permission.objects.filter(codename="add_rechargeorder").update(name="Can add recharge order")
    migrate_again()
    assert Permission.objects.get(codename="add_rechargeorder").name == "可以添加 充值订单"
    with CaptureQueriesContext(connection) as queries:
        migrate_again()
    assert not [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "auth_permission" in q["sql"]]


def test_the_group_and_user_pages_name_permissions_in_chinese(admin_client):
    user = make_user("clerk", is_staff=True)
    for url in ["/admin/auth/group/add/", f"/admin/accounts/user/{user.pk}/change/"]:
        html = admin_client.get(url).content.decode()
        assert "可以添加 充值订单" in html and "可以查看 用户" in html
        assert not [english for english in ENGLISH if english in html], url


# -- the admin's JavaScript catalog ---------------------------------------------------------------


def catalog(admin_client) -> dict:
    response = admin_client.get("/admin/jsi18n/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    script = response.content.decode()
    return json.loads(re.search(r"const newcatalog = (\{.*?\});\n", script, re.S)[1])


def js_strings(name: str) -> set[str]:
    """The strings an admin script asks gettext and pgettext for ("context\\x04text" for the latter)."""
    source = (ADMIN_JS / name).read_text()
    found = {text for _, text in re.findall(r"""\bgettext\(\s*(['"])(.*?)(?<!\\)\1""", source)}
    found |= {f"{context}\x04{text}" for context, text in re.findall(r"\bpgettext\(\s*'([^']*)',\s*'([^']*)'", source)}
    return {text.replace("\\'", "'").replace('\\"', '"') for text in found}


def test_the_javascript_catalog_is_chinese_for_the_two_box_picker(admin_client):
    strings = catalog(admin_client)
    assert strings["Choose"] == "选择"
    assert (
        strings['Choose %s by selecting them and then select the "Choose" arrow button.']
        == "选中要选择的%s，然后点击“选择”箭头按钮。"
    )
    assert strings["Choose all %s"] == "选择全部%s" and strings["Remove all %s"] == "删除全部%s"


@pytest.mark.parametrize("script", ["SelectFilter2.js", "calendar.js", "admin/DateTimeShortcuts.js", "actions.js"])
def test_every_string_of_the_admins_widgets_has_chinese(admin_client, script):
    strings = catalog(admin_client)
    wanted = js_strings(script)
    assert wanted
    missing = sorted(text for text in wanted if text not in strings)
    assert not missing, f"{script}: no Chinese for {missing}"
    # The calendar's one-letter weekdays: Django's zh_Hans leaves S M T W T F S.
    if script == "calendar.js":
        assert strings["one letter Sunday\x04S"] == "日" and strings["one letter Monday\x04M"] == "一"


# -- pages ----------------------------------------------------------------------------------------


def test_the_start_page_and_an_app_page_have_chinese_headers_for_screen_readers(admin_client):
    for url in ["/admin/", "/admin/orders/"]:
        html = admin_client.get(url).content.decode()
        assert '<th scope="col">模型名称</th>' in html and '<th scope="col">增加链接</th>' in html
        assert '<th scope="col">修改或查看列表链接</th>' in html
        assert not [english for english in ENGLISH if english in html], url


def test_a_login_record_is_named_in_chinese_on_its_page(admin_client):
    from axes.models import AccessLog

    record = AccessLog.objects.create(
        username="clerk", ip_address="127.0.0.1", user_agent="test", http_accept="*/*", path_info="/admin/login/"
    )
    html = admin_client.get(f"/admin/axes/accesslog/{record.pk}/change/").content.decode()
    assert "Access Log for" not in html
    assert re.search(r"<h2>clerk \d{4}-\d\d-\d\d \d\d:\d\d:\d\d</h2>", html)


def test_the_incident_list_shows_the_order_and_refund_numbers_in_one_column(admin_client):
    order = settled_order(make_user("payer"), 1000)
    refund = order.start_refund(300, "测试退款")
    Incident.report(Incident.Kind.REFUND_CONFLICT, "退款结果与本地记录不符", order=order, refund=refund)
    html = admin_client.get("/admin/payments/incident/").content.decode()
    cell = re.search(r'<td class="field-trade_display">(.*?)</td>', html, re.S)[1]
    assert order.out_trade_no in cell and "退款 <a href=" in cell and refund.out_refund_no in cell
    assert 'class="field-out_trade_no"' not in html and 'class="field-order_link"' not in html


# -- labels -----------------------------------------------------------------------------------------


def test_labels_start_in_chinese_where_capfirst_would_spoil_them():
    assert RechargeOrder._meta.get_field("prepay_expires_at").verbose_name == "预支付会话有效期"
    assert User._meta.get_field("unionid").verbose_name == "开放平台 unionid"
    assert Message._meta.get_field("openid").verbose_name == "接收者 openid"
    assert Event._meta.get_field("dispatched_at").verbose_name == "派发时间"


def test_no_admin_label_starts_with_a_lowercase_latin_letter(admin_user):
    """capfirst makes "prepay_id 有效期" "Prepay_id 有效期": a label shown in the admin (a list
    column, a field, a filter) starts in Chinese or with a word meant to be capitalised."""
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    spoiled = []
    for model, model_admin in admin.site._registry.items():
        names = {*model_admin.get_list_display(request), *model_admin.get_readonly_fields(request)}
        names |= set(flatten_fieldsets(model_admin.get_fieldsets(request)))
        names |= {f.split("__")[0] for f in model_admin.get_list_filter(request) if isinstance(f, str)}
        for name in names - {"action_checkbox"}:
            if not isinstance(name, str) or name.startswith("password") or name == "usable_password":
                continue  # the add form's password fields are the form's own
            label = str(label_for_field(name, model, model_admin))
            if re.match(r"[a-z]", label):
                spoiled.append(f"{model._meta.label}.{name}: {label}")
    assert not spoiled


# -- WeChat's bill states ---------------------------------------------------------------------------


def test_a_bill_lines_state_is_shown_in_chinese(admin_client):
    day = BillDay.for_date(date(2026, 11, 23))
    at = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    row = BillRow.objects.create(
        bill_day=day,
        line_no=2,
        kind=BillRow.Kind.PAYMENT,
        happened_at=at,
        appid="wx0",
        mch_id="1900000109",
        transaction_id="4200000000000000000000000000001",
        out_trade_no="20261123120000100000000001",
        trade_state="SUCCESS",
        amount=1000,
        refund_amount=0,
        fee_millifen=6000,
        raw="line",
    )
    listed = admin_client.get("/admin/reconciliation/billrow/").content.decode()
    state = re.search(r'<td class="field-state_display">(.*?)</td>', listed)[1]
    assert state == "支付成功"
    page = admin_client.get(f"/admin/reconciliation/billrow/{row.pk}/change/").content.decode()
    assert "支付成功（SUCCESS）" in page

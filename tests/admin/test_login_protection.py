"""django-axes in the admin: Chinese names, and an operator lifting a lockout."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
LOGIN = reverse("accounts:login")
ATTEMPTS = reverse("admin:axes_accessattempt_changelist")


def sign_in(client, username, password="wrong-password-1", ip="10.9.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_login_protection_pages_have_chinese_names_on_the_start_page(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    for name in ("登录尝试", "登录失败", "登录记录"):
        assert name in page
    for english in ("Access attempts", "Access failures", "Access logs"):
        assert english not in page


@pytest.mark.skipif(
    "axes_admin" not in apps.get_app_config("axes").__class__.__module__,
    reason="INSTALLED_APPS lists 'axes': list 'wxrecharge.axes_admin.AxesConfig' instead",
)
def test_the_login_protection_app_and_its_status_column_are_named_in_chinese(admin_client, client):
    assert apps.get_app_config("axes").verbose_name == "登录保护"
    assert "登录保护" in admin_client.get(reverse("admin:index")).content.decode()
    make_user("victim")
    sign_in(client, "victim")
    page = admin_client.get(ATTEMPTS).content.decode()
    assert "状态" in page and "Status" not in page


def test_the_attempts_list_speaks_chinese(admin_client, client):
    make_user("victim")
    sign_in(client, "victim")
    page = admin_client.get(ATTEMPTS).content.decode()
    for text in ("选择 登录尝试 来修改", "尝试时间", "IP 地址", "失败次数", "次机会剩余", "已锁定"):
        assert text in page
    assert "Attempt Time" not in page and "Failed Logins" not in page


def test_an_operator_lifts_a_lockout_by_deleting_the_attempts(admin_client, client):
    make_user("victim")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, "victim")
            clock.shift(timedelta(seconds=30))
        assert sign_in(client, "victim", PASSWORD).status_code == 429  # locked out, even with the password

        # 登录保护 → 登录尝试 → search the name → select its rows → 删除所选的 登录尝试 → confirm.
        found = admin_client.get(ATTEMPTS, {"q": "victim"})
        rows = list(found.context["cl"].result_list)
        assert rows and all(row.username == "victim" for row in rows)
        confirm = admin_client.post(ATTEMPTS, {"action": "delete_selected", "_selected_action": [r.pk for r in rows]})
        assert "删除多个对象" in confirm.content.decode()  # the confirmation page
        done = admin_client.post(ATTEMPTS, {"action": "delete_selected", "post": "yes", "_selected_action": [r.pk for r in rows]})
        assert done.status_code == 302 and not AccessAttempt.objects.filter(username="victim").exists()

        assert sign_in(client, "victim", PASSWORD).status_code == 302  # signed in at once
        assert client.session["_auth_user_id"]

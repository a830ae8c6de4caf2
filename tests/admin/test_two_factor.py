"""Operators who can move money pass a second factor (a TOTP authenticator app, or a recovery
code) after the password, before any admin page (docs/operations.md#两步验证). The rest of the
suite signs operators in without it (OPERATOR_2FA_REQUIRED off in tests/settings.py); every
test here turns it on."""

from __future__ import annotations

import re
from base64 import b32encode
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import two_factor
from accounts.models import User
from accounts.operators import MONEY_PERMISSIONS, needs_second_factor
from audit.models import AuditEntry
from orders.models import RechargeOrder
from tests.admin import operator, settled_order
from tests.factories import make_order, make_user

pytestmark = pytest.mark.django_db

VERIFY = "/admin/otp/verify/"
SETUP = "/admin/otp/setup/"
ORDERS = "/admin/orders/rechargeorder/"


@pytest.fixture(autouse=True)
def required(settings):
    settings.OPERATOR_2FA_REQUIRED = True


@pytest.fixture
def clock():
    """Time stands still unless a test moves it: a TOTP code is the same until the next step."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def code_of(device: TOTPDevice) -> str:
    """What the operator's phone shows now (the drift as the server last saw it)."""
    if TOTPDevice.objects.filter(pk=device.pk).exists():
        device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def wrong_code(device: TOTPDevice) -> str:
    return "000000" if code_of(device) != "000000" else "111111"


def enrolled(user: User) -> tuple[TOTPDevice, list[str]]:
    """An authenticator and recovery codes, as enrolment leaves them (no code used yet)."""
    device = TOTPDevice.objects.create(user=user, name="身份验证器", confirmed=True)
    return device, two_factor.new_recovery_codes(user)


def next_step(clock) -> None:
    clock.shift(timedelta(seconds=30))


def failures(user: User) -> list[str]:
    return [e.changes.get("结果") for e in AuditEntry.objects.filter(action="otp_failed", object_id=str(user.pk)).order_by("pk")]


def verified_operator(username: str, *perms: str, superuser: bool = False) -> tuple[User, Client, TOTPDevice]:
    user, client = operator(username, *perms)
    if superuser:
        User.objects.filter(pk=user.pk).update(is_superuser=True)
    device, _ = enrolled(user)
    response = client.post(VERIFY, {"code": code_of(device)})
    assert response.status_code == 302, response.content.decode()
    return user, client, device


# -- who is asked ---------------------------------------------------------------------------


def test_every_money_permission_exists_but_the_audit_export_still_to_come():
    defined = {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.select_related("content_type")}
    assert set(MONEY_PERMISSIONS) - defined <= {"audit.export_data"}


@pytest.mark.parametrize("perm", [p for p in MONEY_PERMISSIONS if p != "audit.export_data"])
def test_each_money_permission_calls_for_a_second_factor(perm):
    user, _ = operator("holder", perm)
    assert needs_second_factor(User.objects.get(pk=user.pk))


def test_a_role_with_a_money_permission_calls_for_it_too_and_superusers_always():
    from django.contrib.auth.models import Group

    cashiers = Group.objects.create(name="收银")
    cashiers.permissions.add(Permission.objects.get(codename="refund_rechargeorder"))
    user, _ = operator("in_a_role")
    user.groups.add(cashiers)
    assert needs_second_factor(User.objects.get(pk=user.pk))
    assert needs_second_factor(make_user("root", is_staff=True, is_superuser=True))
    assert not needs_second_factor(make_user("member"))


def test_staff_without_money_permissions_are_not_asked():
    make_order(make_user("payer"))
    _, client = operator("viewer", "orders.view_rechargeorder")
    assert client.get("/admin/").status_code == 200
    assert client.get(ORDERS).status_code == 200
    # Nothing to enrol either.
    assert client.get(SETUP)["Location"] == "/admin/"
    assert not TOTPDevice.objects.exists()


def test_nothing_is_asked_with_the_requirement_off(settings):
    settings.OPERATOR_2FA_REQUIRED = False
    _, client = operator("cashier", "orders.refund_rechargeorder")
    assert client.get("/admin/").status_code == 200


# -- enrolment ------------------------------------------------------------------------------


def test_a_money_operator_enrols_from_the_admin_with_a_real_code(clock):
    user, client = operator("cashier", "orders.view_rechargeorder", "orders.refund_rechargeorder")
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{SETUP}?next=/admin/"

    page = client.get(response["Location"])
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    # The QR code is inline SVG markup: nothing the site's CSP would refuse.
    assert re.search(r'<div class="wx-otp__qr" data-testid="otp-qr"><svg ', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|<style", html)
    secret = re.search(r'id="otp-secret"[^>]*value="([^"]+)"', html)[1]
    assert secret.replace(" ", "") == b32encode(device.bin_key).decode()
    # Shown again, the page keeps the same secret (the phone may already have scanned it).
    assert secret in client.get(SETUP).content.decode()
    # Until confirmed, the admin stays closed.
    assert client.get(ORDERS)["Location"].startswith(SETUP)

    done = client.post(SETUP, {"code": code_of(device), "next": "/admin/"})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "只显示这一次" in done.content.decode()
    device.refresh_from_db()
    assert device.confirmed
    assert sorted(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == sorted(codes)
    entry = AuditEntry.objects.get(action="otp_enrolled")
    assert (entry.actor, entry.object_id) == (user, str(user.pk))
    # The session that enrolled is verified.
    assert client.get("/admin/").status_code == 200
    assert client.get(ORDERS).status_code == 200


def test_a_wrong_code_at_enrolment_is_refused_and_audited(clock):
    user, client = operator("cashier", "orders.refund_rechargeorder")
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user)
    page = client.post(SETUP, {"code": wrong_code(device)}).content.decode()
    assert "验证码错误" in page
    device.refresh_from_db()
    assert not device.confirmed
    assert failures(user) == ["验证码错误"]
    assert client.get("/admin/").status_code == 302


def test_a_password_alone_never_replaces_an_enrolled_authenticator():
    user, client = operator("cashier", "orders.refund_rechargeorder")
    device, _ = enrolled(user)
    response = client.get(SETUP)
    assert response["Location"].startswith(VERIFY)
    assert client.post(SETUP, {"code": code_of(device)})["Location"].startswith(VERIFY)
    assert list(TOTPDevice.objects.filter(user=user)) == [device]


# -- the code after the password -------------------------------------------------------------


@pytest.mark.parametrize("method,url", [("get", "/admin/"), ("get", ORDERS), ("get", "/admin/login/"), ("post", ORDERS)])
def test_an_unverified_money_operator_is_sent_to_the_code_from_every_admin_url(method, url):
    user, client = operator("cashier", "orders.view_rechargeorder", "orders.sync_rechargeorder", "orders.refund_rechargeorder")
    enrolled(user)
    order = make_order(make_user("payer"))
    data = {"action": "close_selected", "_selected_action": [str(order.pk)], "index": "0"} if method == "post" else None
    response = getattr(client, method)(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{VERIFY}?next=")
    # The order was not touched by the action.
    assert RechargeOrder.objects.get(pk=order.pk).status == order.status


def test_an_unverified_operator_cannot_reach_an_action_page_or_a_superuser_the_start_page():
    user, client = operator("cashier", "orders.view_rechargeorder", "orders.refund_rechargeorder")
    enrolled(user)
    order = settled_order(make_user("payer"))
    refund = client.get(f"/admin/orders/rechargeorder/{order.pk}/refund/")
    assert refund["Location"] == f"{VERIFY}?next=/admin/orders/rechargeorder/{order.pk}/refund/"
    root = make_user("root", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    # No authenticator yet: enrolment.
    assert admin.get("/admin/")["Location"] == f"{SETUP}?next=/admin/"


def test_a_verified_session_reaches_admin_pages_and_goes_back_to_the_page_asked_for(clock):
    user, client = operator("cashier", "orders.view_rechargeorder", "orders.refund_rechargeorder")
    device, _ = enrolled(user)
    asked = client.get(ORDERS + "?status=paid")["Location"]
    page = client.get(asked)
    assert page.status_code == 200 and "身份验证器" in page.content.decode()
    response = client.post(asked, {"code": code_of(device), "next": ORDERS + "?status=paid"})
    assert response["Location"] == ORDERS + "?status=paid"
    assert client.get("/admin/").status_code == 200
    assert client.get(ORDERS).status_code == 200
    # The verify page itself now goes on.
    assert client.get(VERIFY)["Location"] == "/admin/"
    assert not AuditEntry.objects.filter(action="otp_failed").exists()


def test_the_next_page_must_be_on_this_site(clock):
    user, client = operator("cashier", "orders.refund_rechargeorder")
    device, _ = enrolled(user)
    response = client.post(VERIFY, {"code": code_of(device), "next": "https://evil.example.com/"})
    assert response["Location"] == "/admin/"


def test_a_wrong_code_is_refused_throttled_and_audited(clock):
    user, client = operator("cashier", "orders.refund_rechargeorder")
    device, _ = enrolled(user)
    page = client.post(VERIFY, {"code": wrong_code(device)})
    assert page.status_code == 200
    assert "验证码错误" in page.content.decode()

    # Straight after a refusal even the right code waits (django-otp: 1, 2, 4… seconds).
    page = client.post(VERIFY, {"code": code_of(device)}).content.decode()
    assert "尝试过多，请 1 秒后再试" in page
    assert client.get("/admin/").status_code == 302

    clock.shift(timedelta(seconds=2))
    assert "验证码错误" in client.post(VERIFY, {"code": wrong_code(device)}).content.decode()
    assert "尝试过多，请 2 秒后再试" in client.post(VERIFY, {"code": code_of(device)}).content.decode()
    # Recovery codes share the wait: they are no way around it.
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert "尝试过多" in client.post(VERIFY, {"code": codes[0]}).content.decode()

    assert failures(user) == [
        "验证码错误",
        "尝试过多，请 1 秒后再试",
        "验证码错误",
        "尝试过多，请 2 秒后再试",
        "尝试过多，请 2 秒后再试",
    ]
    entry = AuditEntry.objects.filter(action="otp_failed").first()
    assert (entry.actor, entry.object_type, entry.address) == (user, "accounts.user", "127.0.0.1")

    clock.shift(timedelta(seconds=3))
    assert client.post(VERIFY, {"code": code_of(device)})["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_code_already_used_in_its_window_is_refused(clock):
    user, first = operator("cashier", "orders.refund_rechargeorder")
    device, _ = enrolled(user)
    code = code_of(device)
    assert first.post(VERIFY, {"code": code}).status_code == 302

    # Someone who saw the code types it in another session within the same 30 seconds.
    other = Client()
    other.force_login(user)
    page = other.post(VERIFY, {"code": code})
    assert page.status_code == 200 and "验证码错误" in page.content.decode()
    assert other.get("/admin/").status_code == 302
    assert failures(user) == ["验证码错误"]

    # The next step's code works.
    next_step(clock)
    assert other.post(VERIFY, {"code": code_of(device)}).status_code == 302
    assert other.get("/admin/").status_code == 200


def test_a_recovery_code_works_once_and_says_how_many_are_left(clock):
    user, client = operator("cashier", "orders.refund_rechargeorder")
    _, codes = enrolled(user)
    response = client.post(VERIFY, {"code": codes[3].upper()[:4] + " " + codes[3][4:]}, follow=True)
    assert response.redirect_chain[0] == ("/admin/", 302)
    html = response.content.decode()
    assert "你用恢复码登录了，还剩 9 个" in html and f'href="{SETUP}"' in html
    assert StaticToken.objects.filter(device__user=user).count() == 9
    entry = AuditEntry.objects.get(action="otp_recovery_used")
    assert (entry.actor, entry.changes) == (user, {"剩余恢复码": 9})

    again = Client()
    again.force_login(user)
    assert "验证码错误" in again.post(VERIFY, {"code": codes[3]}).content.decode()
    assert again.get("/admin/").status_code == 302


def test_an_operator_who_lost_the_phone_signs_in_with_a_recovery_code_and_enrols_a_new_one(clock):
    user, client = operator("cashier", "orders.refund_rechargeorder")
    old, codes = enrolled(user)
    client.post(VERIFY, {"code": codes[0]})
    page = client.get(SETUP).content.decode()
    assert "更换身份验证器" in page
    new = TOTPDevice.objects.get(user=user, confirmed=False)
    done = client.post(SETUP, {"code": code_of(new)})
    new_codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(new_codes) == 10
    assert list(TOTPDevice.objects.filter(user=user)) == [new]
    assert not StaticToken.objects.filter(token__in=codes).exists()
    assert client.get("/admin/").status_code == 200
    # The old phone's codes no longer open a session.
    other = Client()
    other.force_login(user)
    next_step(clock)
    assert "验证码错误" in other.post(VERIFY, {"code": code_of(old)}).content.decode()


def test_the_verify_form_needs_a_csrf_token(clock):
    user = make_user("cashier", is_staff=True, is_superuser=True)
    device, _ = enrolled(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    forged = client.post(VERIFY, {"code": code_of(device)})
    assert forged.status_code == 403
    device.refresh_from_db()
    assert device.last_t == -1  # the code was not even looked at
    assert client.get("/admin/").status_code == 302

    page = client.get(VERIFY).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    assert client.post(VERIFY, {"code": code_of(device), "csrfmiddlewaretoken": token}).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_enrolment_form_needs_a_csrf_token_too(clock):
    user = make_user("root", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user)
    assert client.post(SETUP, {"code": code_of(device)}).status_code == 403
    device.refresh_from_db()
    assert not device.confirmed


def test_an_operator_who_owes_the_code_can_still_sign_out():
    user, client = operator("cashier", "orders.refund_rechargeorder")
    enrolled(user)
    assert 'action="/admin/logout/"' in client.get(VERIFY).content.decode()
    client.post("/admin/logout/")
    assert "_auth_user_id" not in client.session
    assert client.get(VERIFY)["Location"].startswith("/admin/login/")


def test_the_pages_need_a_signed_in_staff_member():
    assert Client().get(VERIFY)["Location"].startswith("/admin/login/")
    assert Client().get(SETUP)["Location"].startswith("/admin/login/")
    member = Client()
    member.force_login(make_user("member"))
    assert member.get(SETUP)["Location"].startswith("/admin/login/")


# -- a superuser resets another operator's second factor --------------------------------------


def reset_url(user: User) -> str:
    return f"/admin/otp/reset/{user.pk}/"


def test_a_superuser_resets_an_operators_second_factor_with_a_reason(clock):
    cashier, cashier_client, _ = verified_operator("cashier", "orders.refund_rechargeorder")
    root, root_client, _ = verified_operator("root", superuser=True)
    page = root_client.get(reset_url(cashier))
    assert page.status_code == 200 and "剩余恢复码" in page.content.decode()
    assert "请填写重置原因" in root_client.post(reset_url(cashier), {"reason": ""}).content.decode()
    assert TOTPDevice.objects.filter(user=cashier).exists()

    response = root_client.post(reset_url(cashier), {"reason": "手机丢失，已电话核实本人"})
    assert response["Location"] == f"/admin/accounts/user/{cashier.pk}/change/"
    assert not TOTPDevice.objects.filter(user=cashier).exists()
    assert not StaticDevice.objects.filter(user=cashier).exists()
    entry = AuditEntry.objects.get(action="user.change")
    assert (entry.actor, entry.object_id, entry.reason) == (root, str(cashier.pk), "手机丢失，已电话核实本人")
    assert "两步验证" in entry.changes
    # The cashier's session no longer counts as verified: enrol again.
    assert cashier_client.get("/admin/")["Location"] == f"{SETUP}?next=/admin/"


def test_only_a_verified_superuser_may_reset(clock):
    cashier, _, _ = verified_operator("cashier", "orders.refund_rechargeorder")
    _, boss_client, _ = verified_operator("boss", "accounts.view_user", "accounts.change_user")
    assert boss_client.get(reset_url(cashier)).status_code == 403
    assert boss_client.post(reset_url(cashier), {"reason": "x"}).status_code == 403
    root = make_user("root", is_staff=True, is_superuser=True)
    enrolled(root)
    unverified = Client()
    unverified.force_login(root)
    assert unverified.post(reset_url(cashier), {"reason": "x"})["Location"].startswith(VERIFY)
    assert TOTPDevice.objects.filter(user=cashier).exists()


def test_the_reset_otp_command_resets_with_a_reason_on_the_audit_log(capsys):
    cashier, _ = operator("cashier", "orders.refund_rechargeorder")
    enrolled(cashier)
    call_command("reset_otp", "cashier", "--reason", "手机丢失")
    assert not TOTPDevice.objects.filter(user=cashier).exists()
    assert not StaticDevice.objects.filter(user=cashier).exists()
    assert "2 device(s) removed" in capsys.readouterr().out
    entry = AuditEntry.objects.get(action="user.change")
    assert (entry.actor, entry.object_id, entry.reason) == (None, str(cashier.pk), "reset_otp 命令：手机丢失")
    with pytest.raises(CommandError):
        call_command("reset_otp", "nobody", "--reason", "x")


def test_a_superuser_finds_the_reset_on_an_operators_page_and_everyone_the_header_link():
    _, client, _ = verified_operator("root-r", superuser=True)
    enrolled_user = make_user("enrolled", is_staff=True)
    TOTPDevice.objects.create(user=enrolled_user, name="手机", confirmed=True)
    bare = make_user("bare", is_staff=True)
    page = client.get(f"/admin/accounts/user/{enrolled_user.pk}/change/").content.decode()
    assert f'href="/admin/otp/reset/{enrolled_user.pk}/"' in page and "重置两步验证" in page
    assert "重置两步验证" not in client.get(f"/admin/accounts/user/{bare.pk}/change/").content.decode()
    assert 'data-testid="otp-link"' in page and 'href="/admin/otp/setup/"' in page

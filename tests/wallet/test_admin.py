"""Operators' wallet pages: API clients (a key shown once, rolled, revoked), charges with an
operator's reversal behind its own permission, today's spends on the start page, and the
command that makes a client."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from tests.admin import operator
from tests.wallet.conftest import Api
from wallet.models import ApiClient, Charge, MemberCode, Reversal

pytestmark = pytest.mark.django_db

ADD = "/admin/wallet/apiclient/add/"


def shown_secret(response) -> str:
    match = re.search(r'value="(sk_[^"]+)" data-testid="api-secret"', response.content.decode())
    assert match, response.content.decode()[:2000]
    return match.group(1)


def test_a_new_client_shows_its_key_once_and_the_key_works(client):
    _, admin = operator("ops", "wallet.add_apiclient", "wallet.change_apiclient", "wallet.view_apiclient")
    answer = admin.post(ADD, {"name": "一号店收银", "scopes": ["charges:write", "members:read"], "store": "一号店"})
    assert answer.status_code == 200 and "只显示这一次" in answer.content.decode()
    assert "no-store" in answer["Cache-Control"]
    secret = shown_secret(answer)
    made = ApiClient.objects.get()
    assert (made.name, made.scopes, made.store) == ("一号店收银", ["charges:write", "members:read"], "一号店")
    assert secret not in admin.get(f"/admin/wallet/apiclient/{made.pk}/change/").content.decode()
    assert secret not in str(list(ApiClient.objects.values_list()))  # only its digest is stored
    assert Api(client, secret).get("/api/v1/members/999999").status_code == 404  # authenticated: no such member


def test_a_client_needs_a_name_and_a_scope(client):
    _, admin = operator("ops2", "wallet.add_apiclient", "wallet.view_apiclient")
    answer = admin.post(ADD, {"name": "", "scopes": []})
    assert answer.status_code == 200 and "请至少选择一项权限" in answer.content.decode()
    assert not ApiClient.objects.exists()


def test_rolling_shows_a_new_key_and_the_old_one_stops_revoking_stops_all(client, member):
    api_client, old = ApiClient.issue("收银", ["members:read"])
    _, admin = operator("ops3", "wallet.change_apiclient", "wallet.view_apiclient")
    page = admin.get(f"/admin/wallet/apiclient/{api_client.pk}/change/").content.decode()
    assert 'data-testid="roll"' in page and 'data-testid="revoke"' in page
    assert admin.get(f"/admin/wallet/apiclient/{api_client.pk}/roll/").status_code == 405  # a POST only
    new = shown_secret(admin.post(f"/admin/wallet/apiclient/{api_client.pk}/roll/"))
    assert Api(client, old).get(f"/api/v1/members/{member.pk}").status_code == 401
    assert Api(client, new).get(f"/api/v1/members/{member.pk}").status_code == 200
    admin.post(f"/admin/wallet/apiclient/{api_client.pk}/revoke/")
    assert Api(client, new).get(f"/api/v1/members/{member.pk}").status_code == 401
    assert 'data-testid="roll"' not in admin.get(f"/admin/wallet/apiclient/{api_client.pk}/change/").content.decode()


def test_an_operator_who_may_only_look_cannot_roll_or_revoke(client):
    api_client, secret = ApiClient.issue("收银", ["members:read"])
    _, viewer = operator("viewer", "wallet.view_apiclient")
    assert viewer.post(f"/admin/wallet/apiclient/{api_client.pk}/roll/").status_code == 403
    assert viewer.post(f"/admin/wallet/apiclient/{api_client.pk}/revoke/").status_code == 403
    api_client.refresh_from_db()
    assert api_client.is_active and ApiClient.authenticate(secret) == api_client


def test_an_operator_reverses_a_charge_once_with_a_reason(member):
    charge = Charge.create(amount=1000, member_code=MemberCode.current(member).code, store="一号店")
    cashier, admin = operator("cashier", "wallet.view_charge", "wallet.reverse_charge")
    page = admin.get(f"/admin/wallet/charge/{charge.pk}/change/").content.decode()
    assert "一号店" in page and 'data-testid="reverse"' in page
    form = admin.get(f"/admin/wallet/charge/{charge.pk}/reverse/").content.decode()
    request_no = re.search(r'name="request_no" value="(RQ[0-9]+)"', form).group(1)
    data = {"request_no": request_no, "amount": "4.00", "reason": "顾客投诉，退回部分"}
    answer = admin.post(f"/admin/wallet/charge/{charge.pk}/reverse/", data)
    assert answer.status_code == 302
    again = admin.post(f"/admin/wallet/charge/{charge.pk}/reverse/", data)  # the same form, sent twice
    assert "该撤销已提交" in again.content.decode()
    reversal = Reversal.objects.get()
    assert (reversal.amount, reversal.operator, reversal.reason) == (400, cashier, "顾客投诉，退回部分")
    member.refresh_from_db()
    assert member.balance == 2400
    over = admin.post(f"/admin/wallet/charge/{charge.pk}/reverse/", {**data, "request_no": "RQ" + "1" * 26, "amount": "6.01"})
    assert "撤销金额超过可撤销金额" in over.content.decode()


def test_reversing_needs_its_own_permission(member):
    charge = Charge.create(amount=1000, user_id=member.pk)
    _, viewer = operator("looker", "wallet.view_charge")
    assert 'data-testid="reverse"' not in viewer.get(f"/admin/wallet/charge/{charge.pk}/change/").content.decode()
    assert viewer.get(f"/admin/wallet/charge/{charge.pk}/reverse/").status_code == 403
    assert viewer.post(f"/admin/wallet/charge/{charge.pk}/delete/").status_code == 403
    assert Charge.objects.filter(pk=charge.pk).exists()


def test_the_start_page_shows_todays_spends_beside_recharges(member):
    Charge.create(amount=1250, user_id=member.pk)
    Charge.create(amount=250, user_id=member.pk).reverse(100, "少收")
    _, admin = operator("boss", "wallet.view_charge")
    page = admin.get("/admin/").content.decode()
    spent = page[page.index('data-testid="spent-today"') :]
    assert "¥15.00" in spent[:400] and "2 笔" in spent[:400]
    assert "¥1.00" in page[page.index('data-testid="reversed-today"') :][:400]
    _, other = operator("nobody")
    assert 'data-testid="spends"' not in other.get("/admin/").content.decode()


def test_the_command_prints_a_working_key_once(client, member):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_client", "游戏服务器", "--scopes", "members:read,charges:read", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("sk_") and secret not in err.getvalue()
    assert Api(client, secret).get(f"/api/v1/members/{member.pk}").json()["member"]["balance"] == member.balance
    with pytest.raises(CommandError, match="未知的权限"):
        call_command("create_api_client", "x", "--scopes", "charges:everything", stdout=io.StringIO(), stderr=io.StringIO())

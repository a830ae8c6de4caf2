"""The user page (balance read-only, the latest ledger rows) and the balance adjustment page."""

from __future__ import annotations

import pytest

from orders.models import LedgerEntry
from tests.admin import messages_of, operator, payer_user, settled_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def payer(db):
    return payer_user()


def user_url(user) -> str:
    return f"/admin/accounts/user/{user.pk}/change/"


def form(values: dict) -> dict:
    """The adjustment form as the page sends it, with the one-time number it was shown with."""
    return {"request_no": LedgerEntry.new_request_no(), **values}


def adjust_url(user) -> str:
    return f"/admin/accounts/user/{user.pk}/adjust/"


def test_the_user_page_shows_the_balance_read_only_and_the_latest_20_ledger_rows(admin_client, payer):
    order = settled_order(payer, 1000)
    for n in range(24):
        LedgerEntry.adjust(payer.pk, 1, f"第 {n} 次调整", None)
    html = admin_client.get(user_url(payer)).content.decode()
    assert 'name="balance"' not in html and "¥10.24" in html
    assert "余额流水（最近 20 条，共 25 条）" in html
    assert "第 23 次调整" in html and "第 4 次调整" in html and "第 3 次调整" not in html
    assert order.out_trade_no not in html  # the recharge is the oldest row, beyond the 20
    assert f'href="/admin/orders/ledgerentry/?user={payer.pk}"' in html and "查看全部流水" in html
    assert f'href="{adjust_url(payer)}"' in html


def test_the_full_ledger_link_lists_only_that_users_rows(admin_client, payer):
    settled_order(payer, 1000)
    other = payer_user("other")
    settled_order(other, 2500)
    html = admin_client.get(f"/admin/orders/ledgerentry/?user={payer.pk}").content.decode()
    assert "¥10.00" in html and "¥25.00" not in html


def test_the_ledger_rows_show_yuan_kind_order_and_operator(admin_client, admin_user, payer):
    order = settled_order(payer, 1990)
    LedgerEntry.adjust(payer.pk, -90, "客服补偿冲正", admin_user)
    html = admin_client.get(user_url(payer)).content.decode()
    assert "19.90" in html and "-0.90" in html and "19.00" in html
    assert "充值" in html and "调整" in html and order.out_trade_no in html and "客服补偿冲正" in html
    assert admin_user.username in html


def test_an_adjustment_credits_with_a_reason_and_the_operator(admin_client, admin_user, payer):
    html = admin_client.get(adjust_url(payer)).content.decode()
    assert "调整金额（元）" in html and "当前余额" in html and 'name="_save"' not in html
    response = admin_client.post(adjust_url(payer), form({"amount": "12.50", "reason": "活动赠送"}), follow=True)
    assert response.redirect_chain[-1][0] == user_url(payer)
    assert "已调整 payer 的余额 +12.50 元，调整后余额 ¥12.50" in messages_of(response)
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.reason, entry.operator) == ("adjustment", 1250, "活动赠送", admin_user)


def test_an_adjustment_debits_with_a_negative_amount(admin_client, payer):
    settled_order(payer, 1000)
    response = admin_client.post(adjust_url(payer), form({"amount": "-2.5", "reason": "多充冲正"}), follow=True)
    assert "已调整 payer 的余额 -2.50 元，调整后余额 ¥7.50" in messages_of(response)
    payer.refresh_from_db()
    assert payer.balance == 750


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"amount": "-10.01", "reason": "冲正"}, "余额 ¥10.00 不足以扣减 ¥10.01"),
        ({"amount": "5", "reason": ""}, "请填写调整原因"),
        ({"amount": "5", "reason": "   "}, "请填写调整原因"),
        ({"amount": "0", "reason": "无"}, "调整金额不能为 0"),
        ({"amount": "abc", "reason": "无"}, "请输入正确的金额（元，最多两位小数；扣减请用负数）"),
        ({"amount": "1.234", "reason": "无"}, "请输入正确的金额（元，最多两位小数；扣减请用负数）"),
    ],
)
def test_an_adjustment_is_refused_with_the_reason(admin_client, payer, values, message):
    settled_order(payer, 1000)
    response = admin_client.post(adjust_url(payer), form(values))
    assert response.status_code == 200 and message in response.content.decode()
    payer.refresh_from_db()
    assert payer.balance == 1000 and LedgerEntry.objects.count() == 1


def test_adjusting_needs_the_change_user_permission(payer):
    _, viewer = operator("viewer", "accounts.view_user")
    assert viewer.get(adjust_url(payer)).status_code == 403
    assert viewer.post(adjust_url(payer), form({"amount": "5", "reason": "x"})).status_code == 403
    assert "调整余额" not in viewer.get(user_url(payer)).content.decode()
    _, changer = operator("changer", "accounts.view_user", "accounts.change_user")
    assert changer.post(adjust_url(payer), form({"amount": "5", "reason": "x"})).status_code == 302
    assert LedgerEntry.objects.get().amount == 500


def test_submitting_one_adjustment_form_twice_adjusts_once(admin_client, payer):
    sent = form({"amount": "5", "reason": "活动赠送"})
    assert admin_client.post(adjust_url(payer), sent).status_code == 302
    response = admin_client.post(adjust_url(payer), sent)
    assert response.status_code == 200 and "该调整已提交，请勿重复提交" in response.content.decode()
    payer.refresh_from_db()
    assert payer.balance == 500 and LedgerEntry.objects.count() == 1


def test_an_adjustment_form_without_its_one_time_number_is_refused(admin_client, payer):
    response = admin_client.post(adjust_url(payer), {"amount": "5", "reason": "活动赠送"})
    assert response.status_code == 200 and "页面已过期" in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_saving_a_user_in_the_admin_never_writes_back_a_stale_balance(admin_client, monkeypatch):
    from orders.user_admin import UserAdmin
    from tests.factories import make_order, make_user

    user = make_user("victim")
    save_model = UserAdmin.save_model

    def a_notify_commits_meanwhile(self, request, obj, form, change):
        order = make_order(user, amount=500)
        order.pay("4200000000000000000000000001", 500, order.created_at)
        return save_model(self, request, obj, form, change)

    monkeypatch.setattr(UserAdmin, "save_model", a_notify_commits_meanwhile)
    form = admin_client.get(f"/admin/accounts/user/{user.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k not in ("groups", "user_permissions")}
    data.update(
        {
            "username": "victim",
            "date_joined_0": "2024-01-01",
            "date_joined_1": "00:00:00",
            "is_active": "on",
            "first_name": "小王",
        }
    )
    assert admin_client.post(f"/admin/accounts/user/{user.pk}/change/", data).status_code == 302
    user.refresh_from_db()
    assert (user.first_name, user.balance) == ("小王", 500)  # the form saved, the credit stands


def test_a_password_change_keeps_the_balance(db):
    from orders.models import LedgerEntry
    from tests.factories import make_user

    user = make_user("pw")
    stale = type(user).objects.get(pk=user.pk)
    LedgerEntry.adjust(user.pk, 700, "活动赠送", None)
    stale.set_password("another-horse-battery-8")
    stale.save()
    user.refresh_from_db()
    assert user.balance == 700 and user.check_password("another-horse-battery-8")

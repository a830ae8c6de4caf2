"""Operators' admin: helpers shared by the tests in this package (plain functions, not
fixtures, so that importing them does not shadow pytest's fixture lookup)."""

from __future__ import annotations

import re

from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from orders.models import RechargeOrder
from tests.factories import make_order, make_user

_transaction_ids = iter(range(10**9))
PREPAY = "/payments/jsapi/prepay/"


def operator(username: str, *perms: str) -> tuple[User, Client]:
    """A staff user with exactly these permissions ("app.codename"), signed in."""
    user = make_user(username, is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return user, client


def settled_order(user: User, amount: int = 1000) -> RechargeOrder:
    """An order paid and credited here, without WeChat (enough for checks that stop before it)."""
    order = make_order(user, amount=amount)
    order.pay(f"4200000000{next(_transaction_ids):022d}", amount, timezone.now())
    order.refresh_from_db()
    return order


def placed_at_sandbox(payer: User, amount: str = "10.00", package: int | None = None) -> RechargeOrder:
    """A pending order placed with the sandbox through the recharge page's API (needs
    `sandbox_url`): of `amount`, or of the `package` with this id."""
    client = Client()
    client.force_login(payer)
    data = {"package": package} if package is not None else {"amount": amount}
    body = client.post(PREPAY, data=data, content_type="application/json").json()
    return RechargeOrder.objects.get(out_trade_no=body["out_trade_no"])


def pay_at_sandbox(order: RechargeOrder) -> None:
    """The user pays in the sandbox's cashier; no notify is delivered (no worker runs)."""
    from devtools.wechat_sandbox import services as sandbox_services
    from devtools.wechat_sandbox.models import Trade

    trade = Trade.objects.get(out_trade_no=order.out_trade_no)
    sandbox_services.pay(trade.prepay_id, trade.appid)


def paid_at_sandbox(payer: User, amount: str = "10.00") -> RechargeOrder:
    """An order that the sandbox knows as paid, applied here by orderquery (sync_order)."""
    from payments import services

    order = placed_at_sandbox(payer, amount)
    pay_at_sandbox(order)
    order = services.sync_order(order)
    assert order.status == RechargeOrder.Status.PAID
    return order


def refund_form(client: Client, order: RechargeOrder) -> dict[str, str]:
    """The refund page's form as shown: its values, including the pre-made out_refund_no."""
    html = client.get(refund_url(order)).content.decode()
    return {
        "amount": re.search(r'name="amount"[^>]*value="([^"]*)"', html)[1],
        "out_refund_no": re.search(r'name="out_refund_no" value="([^"]*)"', html)[1],
        "reason": "",
    }


def refund_url(order: RechargeOrder) -> str:
    return f"/admin/orders/rechargeorder/{order.pk}/refund/"


def change_url(order: RechargeOrder) -> str:
    return f"/admin/orders/rechargeorder/{order.pk}/change/"


def run_action(client: Client, model_url: str, action: str, pks, follow: bool = True, **params):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks], "index": "0", **params}
    return client.post(model_url, data, follow=follow)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def payer_user(name: str = "payer") -> User:
    return make_user(name, openid=f"o{name.capitalize():0<27}"[:28])

from __future__ import annotations

import pytest

from devtools.wechat_sandbox import services as sandbox_services
from devtools.wechat_sandbox.models import Trade
from orders.models import RechargeOrder
from payments import services
from tests.factories import make_user


@pytest.fixture
def payer(sandbox_url):
    """A user with a bound WeChat whose orders go to the sandbox over HTTP (test_notify.py and
    others define their own `payer` where no sandbox is needed)."""
    return make_user("payer", openid="oPayer0000000000000000000001")


@pytest.fixture
def payer_client(client, payer):
    client.force_login(payer)
    return client


@pytest.fixture
def paid_order(client, sandbox_url):
    """Place an order through the page API, pay it at the (sandbox) WeChat, and sync it here."""

    def make(amount: str = "10.00", username: str = "refundee") -> RechargeOrder:
        from accounts.models import User

        user = User.objects.filter(username=username).first() or make_user(username, openid=f"o{username:0<27}")
        client.force_login(user)
        body = client.post("/payments/jsapi/prepay/", {"amount": amount}, content_type="application/json").json()
        trade = Trade.objects.get(out_trade_no=body["out_trade_no"])
        sandbox_services.pay(trade.prepay_id, trade.appid)
        order = services.sync_order(RechargeOrder.objects.get(out_trade_no=body["out_trade_no"]))
        assert order.status == RechargeOrder.Status.PAID
        return order

    return make


def settle_sandbox_refunds() -> int:
    """Make the sandbox's processing refunds due now and settle them (as WeChat would, a little later)."""
    from django.utils import timezone

    from devtools.wechat_sandbox.models import Refund as SandboxRefund

    SandboxRefund.objects.filter(state=SandboxRefund.PROCESSING).update(settle_at=timezone.now())
    return sandbox_services.settle_due_refunds()

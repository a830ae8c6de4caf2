"""What sweep_orders lets go of beside rejected notifies: the wallet's expired member codes,
spent idempotency keys and old API call records, and old webhook events no longer pending
(common/housekeeping.py); nothing that is still in use."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from orders.models import LedgerEntry, OpenLot
from outbox.models import Delivery, Event, WebhookEndpoint
from payments import sweeper
from tests.factories import make_user
from wallet.models import ApiClient, ApiRequest, Charge, IdempotencyKey, MemberCode

pytestmark = pytest.mark.django_db


def test_old_records_go_and_what_is_in_use_stays(settings):
    user = make_user("old", openid="oOld")
    LedgerEntry.post(user.pk, 5000, LedgerEntry.Kind.ADJUSTMENT, reason="x", lots=OpenLot(gift=True))
    long_ago = timezone.now() - timedelta(days=120)
    with time_machine.travel(long_ago, tick=False):
        used = MemberCode.current(user)
        Charge.create(amount=100, member_code=used.code)  # a used code stays with its charge
        client, _ = ApiClient.issue("收银", ["charges:write"])
        IdempotencyKey.objects.create(client=client, key="k", request_digest="d", created_at=long_ago, answer="{}")
        ApiRequest.objects.create(client=client, method="POST", path="/api/v1/charges", status_code=201)
        endpoint = WebhookEndpoint.add("https://pos.example.com/hook", ["charge.succeeded", "balance.adjusted"])
        LedgerEntry.adjust(user.pk, 100, "旧的", operator=None)
    Event.objects.update(dispatched_at=long_ago)
    Delivery.objects.create(event=Event.objects.get(type="balance.adjusted"), endpoint=endpoint)  # still pending
    fresh = MemberCode.current(user)

    result = sweeper.run_pass()

    assert result.purged >= 3
    assert MemberCode.objects.filter(pk=used.pk).exists() and MemberCode.objects.filter(pk=fresh.pk).exists()
    assert not IdempotencyKey.objects.exists() and not ApiRequest.objects.exists()
    assert list(Event.objects.values_list("type", flat=True)) == ["balance.adjusted"]  # its delivery is pending


def test_an_expired_code_never_used_goes_after_a_day():
    user = make_user("codes", openid="oCodes")
    with time_machine.travel(timezone.now() - timedelta(days=2), tick=False):
        old = MemberCode.current(user)
    sweeper.run_pass()
    assert not MemberCode.objects.filter(pk=old.pk).exists()

"""A database at the schema before this week's migrations (commit b476c9e), holding data,
upgrades cleanly to the latest migrations (docs/architecture.md#money-invariants): every
balance still equals the sum of its ledger rows, bill fees become millifen, a refund WeChat
accepted gets its accepted_at, and a rate-limit row is still read through the common app.

The suite builds its database from the models (--no-migrations), with no migration recorded:
this test records them all as applied (that is the schema the models made), migrates back
to the old state, writes the data through the old state's models, and migrates forward
again with the real migrations, as `manage.py migrate` does on a deployment. The database is
left at the latest schema (and with no migration recorded) for the tests that follow.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum

# The latest migration of each app at b476c9e (`git ls-tree -r b476c9e --name-only | grep
# migrations/`); the common app had none.
OLD = [
    ("accounts", "0003_user_unionid"),
    ("orders", "0005_prepay_id_label"),
    ("payments", "0005_incident_bill_kinds"),
    ("reconciliation", "0001_initial"),
    ("wxrecharge", "0001_initial"),
    ("sandbox", "0005_bill_switches"),
]
OLD_TARGETS = [*OLD, ("common", None)]

BEIJING = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=BEIJING)
RATE_KEY = "prepay:user:1"


def executor() -> MigrationExecutor:
    """A fresh executor: it reads which migrations are applied when it is made."""
    return MigrationExecutor(connection)


@pytest.fixture
def real_migrations(settings, transactional_db):
    """The project's migrations (--no-migrations hides them), every one recorded as applied;
    afterwards the database is at the latest schema again and the records are gone."""
    settings.MIGRATION_MODULES = {}
    recorder = executor().recorder
    recorder.ensure_schema()
    recorded_before = set(recorder.applied_migrations())
    nodes = set(executor().loader.graph.nodes)
    for app, name in sorted(nodes - recorded_before):
        recorder.record_applied(app, name)
    yield
    latest = executor()
    latest.migrate(latest.loader.graph.leaf_nodes())  # also after a failure half-way
    for app, name in nodes - recorded_before:
        recorder.record_unapplied(app, name)


def write_old_data(apps) -> dict[str, int]:
    """Users, orders paid and pending, refunds (one accepted and settled, one accepted and in
    flight, one not yet sent), ledger rows whose sums are the balances, a rate-limit window, a
    reconciled day with its fee in fen: through the models as they were at b476c9e."""
    User = apps.get_model("accounts", "User")
    RechargeOrder = apps.get_model("orders", "RechargeOrder")
    Refund = apps.get_model("orders", "Refund")
    LedgerEntry = apps.get_model("orders", "LedgerEntry")
    RateLimitWindow = apps.get_model("wxrecharge", "RateLimitWindow")
    BillDay = apps.get_model("reconciliation", "BillDay")
    BillRow = apps.get_model("reconciliation", "BillRow")

    alice = User.objects.create(username="alice", openid="oAlice", password="!")
    bob = User.objects.create(username="bob", openid="oBob", password="!")
    User.objects.create(username="carol", password="!")  # nothing ever happened: balance 0, no rows
    operator = User.objects.create(username="ops", password="!", is_staff=True)

    def order(user, n, amount, status, paid=False):
        return RechargeOrder.objects.create(
            out_trade_no=f"WXR20260302{n:06d}",
            user=user,
            amount=amount,
            status=status,
            channel="jsapi",
            openid=user.openid,
            prepay_id=f"wx0302{n:06d}",
            expires_at=T0 + timedelta(minutes=30),
            transaction_id=f"42000026202603020{n:06d}" if paid else None,
            paid_at=T0 + timedelta(minutes=1) if paid else None,
            created_at=T0,
        )

    balances = {"alice": 0, "bob": 0}

    def post(user, amount, kind, **links):
        balances[user.username] += amount
        LedgerEntry.objects.create(
            user=user, amount=amount, kind=kind, balance_after=balances[user.username], created_at=T0, **links
        )

    paid = order(alice, 1, 10000, 1, paid=True)
    post(alice, 10000, "recharge", order=paid)
    order(alice, 2, 5000, 0)  # pending
    order(alice, 3, 3000, 2)  # closed, never paid
    bobs = order(bob, 4, 2000, 1, paid=True)
    post(bob, 2000, "recharge", order=bobs)

    def refund(n, amount, status, accepted, minutes):
        made = Refund.objects.create(
            order=paid,
            out_refund_no=f"RF20260302{n:06d}",
            amount=amount,
            status=status,
            reason="用户申请",
            requested_by=operator,
            refund_id=f"50300000{n:06d}" if accepted else None,
            accepted=accepted,
            settled_at=T0 + timedelta(hours=1) if status == 1 else None,
            created_at=T0 + timedelta(minutes=minutes),
        )
        post(alice, -amount, "refund", order=paid, refund=made)  # debited when it is made
        return made

    refund(1, 2000, 1, True, 10)  # WeChat accepted it, then it succeeded
    refund(2, 3000, 0, True, 20)  # accepted, still in flight
    refund(3, 1000, 0, False, 30)  # not sent yet
    RechargeOrder.objects.filter(pk=paid.pk).update(refunded_amount=2000)
    post(bob, -500, "adjustment", operator=operator, reason="人工调整", request_no="ADJ-1")
    for user in (alice, bob):
        User.objects.filter(pk=user.pk).update(balance=balances[user.username])

    RateLimitWindow.objects.create(key=RATE_KEY, window_start=T0, hits=3)

    day = BillDay.objects.create(
        date=date(2026, 3, 2),
        status="balanced",
        api="v3",
        wechat_paid_count=2,
        wechat_paid=12000,
        wechat_refund_count=1,
        wechat_refunded=2000,
        wechat_fee=72,  # fen
        our_paid_count=2,
        our_paid=12000,
        our_refund_count=1,
        our_refunded=2000,
    )
    for line_no, (kind, out_trade_no, amount, refund_amount, fee) in enumerate(
        [("payment", paid.out_trade_no, 10000, 0, 60), ("payment", bobs.out_trade_no, 2000, 0, 12), ("refund", "", 0, 2000, 0)],
        start=1,
    ):
        BillRow.objects.create(
            bill_day=day,
            line_no=line_no,
            kind=kind,
            happened_at=T0,
            appid="wx5a9dbox0000000a1",
            mch_id="1900000109",
            transaction_id=f"T{line_no}",
            out_trade_no=out_trade_no,
            trade_state="SUCCESS" if kind == "payment" else "REFUND",
            amount=amount,
            refund_amount=refund_amount,
            fee=fee,
            raw=f"line {line_no}",
        )
    return balances


@pytest.mark.django_db(transaction=True)
def test_a_database_at_the_old_schema_with_data_upgrades_keeping_the_books(real_migrations):
    back = executor()
    back.migrate(OLD_TARGETS)
    old = executor()
    assert set(OLD) <= set(old.loader.applied_migrations)
    assert not any(app == "common" for app, _ in old.loader.applied_migrations)
    balances = write_old_data(old.loader.project_state(OLD).apps)

    forward = executor()
    forward.migrate(forward.loader.graph.leaf_nodes())
    assert executor().migration_plan(executor().loader.graph.leaf_nodes()) == []

    # Read through today's models.
    from accounts.models import User
    from common.models import RateLimitWindow
    from orders.models import LedgerEntry, RechargeOrder, Refund
    from reconciliation.models import BillDay, BillRow

    for user in User.objects.all():
        ledger = LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0
        assert user.balance == ledger, user.username
    assert {u.username: u.balance for u in User.objects.filter(username__in=balances)} == balances == {"alice": 4000, "bob": 1500}

    refunds = {r.out_refund_no: r for r in Refund.objects.all()}
    for refund in refunds.values():
        assert refund.accepted_at == (refund.created_at if refund.accepted else None), refund.out_refund_no
    assert refunds["RF20260302000001"].accepted_at == T0 + timedelta(minutes=10)
    assert RechargeOrder.objects.get(out_trade_no="WXR20260302000001").refunded_amount == 2000
    assert RechargeOrder.objects.filter(status=RechargeOrder.Status.PENDING).count() == 1

    day = BillDay.objects.get()
    assert day.wechat_fee_millifen == 72_000
    assert sorted(BillRow.objects.values_list("fee_millifen", flat=True)) == [0, 12_000, 60_000]

    window = RateLimitWindow.objects.get(key=RATE_KEY)
    assert (window.window_start, window.hits) == (T0, 3)

    # Each balance kept before lots is now held by lots (its recharges' paid money).
    from orders.models import Lot

    lots = {lot.user.username: (lot.order.out_trade_no, lot.paid, lot.paid_left, lot.bonus_left) for lot in Lot.objects.all()}
    assert lots["alice"] == ("WXR20260302000001", 10000, 4000, 0)
    assert lots["bob"][1:] == (2000, 1500, 0)


@pytest.mark.django_db(transaction=True)
def test_lots_are_opened_by_replaying_a_ledger_with_spends_reversals_and_failed_refunds(real_migrations):
    """The data migration that opened lots (orders 0010) replays each user's ledger with the
    rules of orders/allocation.py: recharges are lots, spends take the oldest first, a
    reversal gives back where its spend took, a failed refund where its refund took."""
    executor().migrate([("orders", "0009_lots_and_offers")])  # and what depends on later ones, back
    at = executor()
    apps = at.loader.project_state(list(at.loader.applied_migrations)).apps
    User, Order, Entry = (
        apps.get_model(*name) for name in [("accounts", "User"), ("orders", "RechargeOrder"), ("orders", "LedgerEntry")]
    )
    Refund, Charge, Reversal = (apps.get_model(*n) for n in [("orders", "Refund"), ("wallet", "Charge"), ("wallet", "Reversal")])
    carol = User.objects.create(username="carol", password="!", balance=0)
    total = 0

    def post(amount, kind, minutes, **links):
        nonlocal total
        total += amount
        return Entry.objects.create(
            user=carol, amount=amount, kind=kind, balance_after=total, created_at=T0 + timedelta(minutes=minutes), **links
        )

    def order(n, amount):
        made = Order.objects.create(
            out_trade_no=f"WXR2026030200010{n}",
            user=carol,
            amount=amount,
            status=1,
            channel="jsapi",
            openid="oC",
            expires_at=T0,
            transaction_id=f"420000{n}",
            paid_at=T0,
        )
        post(amount, "recharge", n, order=made)
        return made

    order(1, 5000)
    second = order(2, 3000)
    spend = post(-6000, "spend", 3)  # all of the first, ¥10 of the second
    charge = Charge.objects.create(number="CH1", user=carol, amount=6000, reversed_amount=2000, entry=spend, created_at=T0)
    back = post(2000, "spend_reversal", 4)  # ¥10 back to the second, ¥10 to the first
    Reversal.objects.create(number="RV1", charge=charge, amount=2000, entry=back, created_at=T0)
    refund = Refund.objects.create(order=second, out_refund_no="RF1", amount=3000, reason="x", status=2)
    post(-3000, "refund", 5, order=second, refund=refund)
    post(3000, "refund_return", 6, order=second, refund=refund)
    post(500, "adjustment", 7, reason="补偿")
    User.objects.filter(pk=carol.pk).update(balance=total)

    forward = executor()
    forward.migrate(forward.loader.graph.leaf_nodes())

    from orders.models import Lot

    held = {lot.order.out_trade_no if lot.order else "调整": (lot.paid_left, lot.bonus_left) for lot in Lot.objects.all()}
    assert held == {"WXR20260302000101": (1000, 0), "WXR20260302000102": (3000, 0), "调整": (0, 500)}
    assert sum(p + b for p, b in held.values()) == total == 4500

"""common/statements.py: ORM queries compiled once and run with new values send what the ORM
would, and see what the ORM would see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.statements import Statement
from orders.models import LedgerEntry, RechargeOrder
from payments.models import Notification
from tests.factories import make_order, make_user

pytestmark = pytest.mark.django_db

BY_NUMBER = Statement.select(
    RechargeOrder,
    lambda p: RechargeOrder.objects.filter(out_trade_no=p("out_trade_no")).values_list("id", "amount", "created_at"),
)
LOCK = Statement.select(
    RechargeOrder,
    lambda p: RechargeOrder.objects.select_for_update().filter(pk=p("id")).values_list("status", "amount"),
)
PENDING_OF_USER = Statement.select(
    RechargeOrder,
    lambda p: (
        RechargeOrder.objects.filter(user=p("user"), status=RechargeOrder.Status.PENDING)
        .order_by("pk")
        .values_list("out_trade_no", flat=True)
    ),
)
MARK_PAID = Statement.update_by_pk(RechargeOrder, ["status", "transaction_id", "paid_at"])
INSERT_NOTIFICATION = Statement.insert(
    Notification,
    [
        "kind",
        "api",
        "headers",
        "raw_body",
        "remote_addr",
        "received_at",
        "out_trade_no",
        "out_refund_no",
        "outcome",
        "detail",
        "traceback",
    ],
)


def test_a_select_returns_what_the_orm_returns_converted_as_the_orm_converts():
    order = make_order(make_user("s1", openid="oS1"), amount=1990)
    assert BY_NUMBER.one(out_trade_no=order.out_trade_no) == tuple(
        RechargeOrder.objects.filter(pk=order.pk).values_list("id", "amount", "created_at").get()
    )
    created_at = BY_NUMBER.one(out_trade_no=order.out_trade_no)[2]
    assert created_at == order.created_at and created_at.tzinfo is not None  # a datetime on SQLite too
    assert BY_NUMBER.one(out_trade_no="NOSUCHORDER") is None


def test_constants_stay_and_each_call_sends_its_own_values():
    user, other = make_user("s2", openid="oS2"), make_user("s3", openid="oS3")
    first, second = make_order(user, amount=100), make_order(user, amount=200)
    make_order(other, amount=300)
    RechargeOrder.objects.filter(pk=second.pk).update(status=RechargeOrder.Status.CLOSED)
    assert PENDING_OF_USER.rows(user=user.pk) == [(first.out_trade_no,)]
    assert PENDING_OF_USER.rows(user=user) == [(first.out_trade_no,)]  # a model instance: its key
    assert len(PENDING_OF_USER.rows(user=other.pk)) == 1


def test_it_is_compiled_once_and_then_sends_the_same_sql():
    order = make_order(make_user("s4", openid="oS4"), amount=100)
    statement = Statement.select(RechargeOrder, lambda p: RechargeOrder.objects.filter(pk=p("id")).values_list("amount"))
    built = []
    original = statement.build
    statement.build = lambda p: built.append(1) or original(p)
    with CaptureQueriesContext(connection) as queries:
        assert statement.one(id=order.pk) == (100,)
        assert statement.one(id=order.pk + 1000) is None
    assert len(built) == 1
    assert queries[0]["sql"].split("WHERE")[0] == queries[1]["sql"].split("WHERE")[0]


def test_an_update_changes_only_its_row_and_prepares_datetimes_as_the_orm_does():
    user = make_user("s5", openid="oS5")
    order, untouched = make_order(user, amount=100), make_order(user, amount=100)
    paid_at = timezone.now() - timedelta(minutes=3)
    with transaction.atomic():
        assert LOCK.one(id=order.pk) == (RechargeOrder.Status.PENDING, 100)
        assert MARK_PAID.run(pk=order.pk, status=RechargeOrder.Status.PAID, transaction_id="4200S5", paid_at=paid_at) == 1
    order.refresh_from_db()
    untouched.refresh_from_db()
    assert (order.status, order.transaction_id, order.paid_at) == (RechargeOrder.Status.PAID, "4200S5", paid_at)
    assert untouched.status == RechargeOrder.Status.PENDING and untouched.paid_at is None
    assert MARK_PAID.run(pk=order.pk + 1000, status=1, transaction_id="x", paid_at=paid_at) == 0


def test_an_insert_returns_the_new_key_and_stores_every_value_as_the_orm_would():
    received_at = timezone.now() - timedelta(seconds=5)
    values = {
        "kind": "payment",
        "api": "v2",
        "headers": {"Wechatpay-Serial": "ABC"},
        "raw_body": b"<xml>\x00\xff</xml>",
        "remote_addr": "203.0.113.7",
        "received_at": received_at,
        "out_trade_no": "",
        "out_refund_no": "",
        "outcome": "received",
        "detail": "",
        "traceback": "",
    }
    pk = INSERT_NOTIFICATION.run(**values)
    pk_again = INSERT_NOTIFICATION.run(**{**values, "remote_addr": None})
    assert pk_again != pk
    log = Notification.objects.get(pk=pk)
    assert (log.headers, log.body, log.remote_addr, log.received_at) == (
        {"Wechatpay-Serial": "ABC"},
        b"<xml>\x00\xff</xml>",
        "203.0.113.7",
        received_at,
    )
    assert Notification.objects.get(pk=pk_again).remote_addr is None


def test_the_statements_follow_the_model_not_a_copy_of_its_columns():
    # The ledger's statement names fields; its SQL carries the model's own table and columns.
    sql, slots = Statement.insert(LedgerEntry, ["user", "amount"]).compiled()
    assert LedgerEntry._meta.db_table in sql and '"user_id"' in sql.replace("`", '"')
    assert [slot.name for slot in slots] == ["user", "amount"]

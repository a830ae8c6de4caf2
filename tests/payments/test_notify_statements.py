"""The notify path's statements (common/statements.py) as they are sent: one kept cursor per
PostgreSQL connection, constants written into the SQL, values the backend takes as they
are sent unprepared, and everything else still prepared as the ORM prepares it."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.statements import Statement
from orders.models import RechargeOrder
from payments.models import Notification
from tests.factories import make_order, make_user
from tests.helpers import notify_xml

pytestmark = pytest.mark.django_db

STATUS_OF = Statement.select(RechargeOrder, lambda p: RechargeOrder.objects.filter(pk=p("id")).values_list("status"))
INSERT_NOTE = Statement.insert(
    Notification,
    ["kind", "raw_body", "received_at", "outcome"],
    constants={"api": "v2", "headers": {}, "out_trade_no": "", "out_refund_no": "", "detail": "100% 'done'", "traceback": ""},
)
MARK_PAID = Statement.update_by_pk(RechargeOrder, ["status", "paid_at"])


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="only a PostgreSQL connection keeps a cursor for them")
@pytest.mark.django_db(transaction=True)
def test_a_postgresql_connection_keeps_one_cursor_and_makes_a_new_one_with_a_new_connection(monkeypatch):
    order = make_order(make_user("k1", openid="oK1"), amount=100)
    default = connections["default"]
    made = []
    real_cursor = default.cursor
    monkeypatch.setattr(default, "cursor", lambda: made.append(1) or real_cursor())
    for _ in range(5):
        assert STATUS_OF.one(id=order.pk) == (RechargeOrder.Status.PENDING,)
    assert len(made) <= 1
    kept = len(made)
    default.close()  # as after an error, or past DATABASE_CONN_MAX_AGE: the next statement's is new
    for _ in range(3):
        assert STATUS_OF.one(id=order.pk) == (RechargeOrder.Status.PENDING,)
    assert len(made) == kept + 1


def test_a_test_counting_queries_sees_every_statement_of_a_notify(client):
    order = make_order(make_user("k2", openid="oK2"), amount=500)
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/payments/wechat/notify/", notify_xml(order.out_trade_no, 500), content_type="text/xml")
    assert b"SUCCESS" in response.content
    control = ("BEGIN", "COMMIT", "SELECT 1", "SAVEPOINT", "RELEASE SAVEPOINT")
    sent = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(control)]
    # record; lock the order, the order, lock the user, the balance, the ledger row, the lot
    # and its move, the outbox event; the outcome.
    assert sent[0].startswith('INSERT INTO "payments_notification"')
    assert sent[-1].startswith('UPDATE "payments_notification"') and len(sent) == 10


def test_constants_are_stored_as_given_even_with_quotes_and_percent_signs():
    received_at = timezone.now() - timedelta(seconds=3)
    pk = INSERT_NOTE.run(kind="payment", raw_body=b"<xml>\x00</xml>", received_at=received_at, outcome="received")
    log = Notification.objects.get(pk=pk)
    assert (log.api, log.headers, log.detail, log.body, log.received_at) == (
        "v2",
        {},
        "100% 'done'",
        b"<xml>\x00</xml>",
        received_at,
    )
    if connection.vendor == "postgresql":  # elsewhere the constants stay values of the statement
        sql, slots = INSERT_NOTE.compiled()
        assert [slot.name for slot in slots] == ["kind", "raw_body", "received_at", "outcome"]
        assert "100%% ''done''" in sql


def test_a_str_enum_is_stored_as_its_value_and_a_naive_datetime_as_the_orm_stores_it():
    pk = INSERT_NOTE.run(
        kind=Notification.Kind.PAYMENT, raw_body=b"", received_at=timezone.now(), outcome=Notification.Outcome.APPLIED
    )
    assert Notification.objects.filter(pk=pk, kind="payment", outcome="applied").exists()
    order = make_order(make_user("k3", openid="oK3"), amount=100)
    naive = datetime(2026, 11, 23, 12, 0, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert MARK_PAID.run(pk=order.pk, status=RechargeOrder.Status.PAID, paid_at=naive) == 1
    assert any("naive datetime" in str(w.message) for w in caught)  # the field's own warning
    order.refresh_from_db()
    assert order.paid_at == timezone.make_aware(naive)
    aware = timezone.now().replace(microsecond=0)
    MARK_PAID.run(pk=order.pk, status=RechargeOrder.Status.PAID, paid_at=aware)
    order.refresh_from_db()
    assert order.paid_at == aware

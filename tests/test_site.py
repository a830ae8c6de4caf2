from __future__ import annotations

from unittest import mock

import pytest
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import F

from accounts.models import User
from common.money import fee_yuan, format_fee, format_fen


@pytest.mark.django_db
def test_healthz_answers_ok_after_a_database_query(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_answers_head_as_get_for_load_balancers(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.head("/healthz")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_healthz_answers_503_when_the_database_fails(client):
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "error"


@pytest.mark.django_db
def test_the_database_refuses_a_negative_balance(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(pk=user.pk).update(balance=F("balance") - 1)
    user.refresh_from_db()
    assert user.balance == 0


@pytest.mark.django_db
def test_openids_are_unique_when_set_and_may_be_empty_for_many():
    User.objects.create(username="a", openid="o-1")
    User.objects.create(username="b")
    User.objects.create(username="c")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(username="d", openid="o-1")


@pytest.mark.parametrize(("fen", "text"), [(0, "0.00"), (1, "0.01"), (29, "0.29"), (1990, "19.90"), (500000, "5000.00")])
def test_fen_are_shown_as_yuan_with_two_decimals(fen, text):
    assert format_fen(fen) == text


@pytest.mark.parametrize(
    ("millifen", "bill", "people"),
    [
        (0, "0.00000", "¥0.00"),
        (6000, "0.06000", "¥0.06"),
        (6123, "0.06123", "¥0.06123"),
        (-2000, "-0.02000", "-¥0.02"),
        (-2123, "-0.02123", "-¥0.02123"),
        (1234567, "12.34567", "¥12.34567"),
    ],
)
def test_fees_are_written_as_wechats_bills_write_them_and_shown_to_the_decimal_they_have(millifen, bill, people):
    assert (format_fee(millifen), fee_yuan(millifen)) == (bill, people)

"""The merchant API (/api/v1/) as a merchant's POS server sees it: charges by member code,
reversals, reading back, authentication and scopes, idempotency, and every bad input a clear
JSON error with nothing moved."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from orders.models import LedgerEntry
from tests.factories import make_user
from tests.wallet.conftest import Api, fund
from wallet.models import ApiClient, ApiRequest, Charge, IdempotencyKey, MemberCode

pytestmark = pytest.mark.django_db


def balance(user) -> int:
    user.refresh_from_db()
    return user.balance


def error(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return body["error"]["code"]


# -- charging ---------------------------------------------------------------------------------


def test_a_member_code_pays_once_and_the_answer_has_the_charge_and_the_new_balance(pos, member, code):
    answer = pos.charge(code, 1250, description="洗衣 1 次", store="一号店")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["balance"] == 1750 == balance(member)
    charge = body["charge"]
    assert (charge["amount"], charge["status"], charge["store"], charge["member_id"]) == (1250, "succeeded", "一号店", member.pk)
    assert charge["id"].startswith("CH") and charge["amount_reversed"] == 0 and charge["reversals"] == []
    row = LedgerEntry.objects.get(charge__number=charge["id"])
    assert (row.kind, row.amount, row.balance_after) == (LedgerEntry.Kind.SPEND, -1250, 1750)
    again = pos.charge(code, 100)
    assert again.status_code == 404 and error(again) == "member_code_invalid"
    assert balance(member) == 1750


def test_an_unknown_or_expired_code_gets_the_same_answer_as_a_used_one(pos, member):
    expired = MemberCode.current(member)
    with time_machine.travel(timezone.now() + MemberCode.VALID_FOR + timedelta(seconds=1)):
        answers = [pos.charge(expired.code, 100), pos.charge("880000000000000000", 100), pos.charge("", 100)]
    assert [(a.status_code, error(a)) for a in answers] == [(404, "member_code_invalid")] * 3
    assert balance(member) == 3000 and not Charge.objects.exists()


def test_more_than_the_balance_is_402_with_the_balance_and_the_code_stays_usable(pos, member, code):
    answer = pos.charge(code, 3001)
    assert answer.status_code == 402 and error(answer) == "insufficient_balance"
    assert answer.json()["error"]["balance"] == 3000
    assert balance(member) == 3000 and not Charge.objects.exists()
    assert pos.charge(code, 3000).status_code == 201  # the customer's code was not spent by the refusal
    assert balance(member) == 0


@pytest.mark.parametrize("amount", [0, -100, 12.5, "100", True, None, 10**12, Charge.MAX_AMOUNT + 1])
def test_a_bad_amount_is_422_and_nothing_moves(pos, member, code, amount):
    answer = pos.charge(code, amount)
    assert answer.status_code == 422 and error(answer) == "invalid_amount"
    assert balance(member) == 3000
    assert MemberCode.objects.get(code=code).used_at is None


def test_member_id_charges_need_their_own_scope(client, member):
    api_client, secret = ApiClient.issue("游戏服务器", ["charges:write", "charges:read"])
    api = Api(client, secret)
    denied = api.post("/api/v1/charges", {"member_id": member.pk, "amount": 100})
    assert denied.status_code == 403 and error(denied) == "forbidden_scope"
    api_client.scopes = [*api_client.scopes, "charges:by_member_id"]
    api_client.save()
    assert api.post("/api/v1/charges", {"member_id": member.pk, "amount": 100}).status_code == 201
    unknown = api.post("/api/v1/charges", {"member_id": 987654, "amount": 100})
    assert unknown.status_code == 404 and error(unknown) == "member_not_found"
    both = api.post("/api/v1/charges", {"member_id": member.pk, "member_code": "88", "amount": 100})
    assert both.status_code == 400 and error(both) == "invalid_request"
    assert balance(member) == 2900


def test_a_disabled_member_cannot_be_charged_and_their_code_says_no_more_than_any_bad_code(client, pos, member, code):
    member.is_active = False
    member.save()
    answer = pos.charge(code, 100)
    assert answer.status_code == 404 and error(answer) == "member_code_invalid"
    _, secret = ApiClient.issue("按编号扣款", ["charges:write", "charges:by_member_id"])
    by_id = Api(client, secret).post("/api/v1/charges", {"member_id": member.pk, "amount": 100})
    assert by_id.status_code == 404 and error(by_id) == "member_not_found"
    assert balance(member) == 3000


def test_a_client_with_a_store_charges_in_its_store_only(client, member, code):
    api_client, secret = ApiClient.issue("二号店收银", ["charges:write"], store="二号店")
    api = Api(client, secret)
    other = api.charge(code, 100, store="一号店")
    assert other.status_code == 400 and error(other) == "invalid_request"
    assert api.charge(code, 100).json()["charge"]["store"] == "二号店"


# -- who may call -----------------------------------------------------------------------------


def test_no_key_a_wrong_key_a_revoked_key_and_a_rolled_key_are_401(pos, member, code):
    assert error(pos.client.post("/api/v1/charges", "{}", content_type="application/json")) == "unauthorized"
    assert pos.charge(code, 100, secret="sk_" + "x" * 43).status_code == 401
    old = pos.secret
    new = pos.api_client.roll()
    assert pos.charge(code, 100, secret=old).status_code == 401
    assert pos.charge(code, 100, secret=new).status_code == 201
    pos.api_client.revoke()
    assert pos.charge(MemberCode.current(member).code, 100, secret=new).status_code == 401
    assert balance(member) == 2900


def test_a_key_without_the_scope_is_403(client, member, code):
    _, secret = ApiClient.issue("只读报表", ["charges:read"])
    answer = Api(client, secret).charge(code, 100)
    assert answer.status_code == 403 and error(answer) == "forbidden_scope"
    assert answer.json()["error"]["scope"] == "charges:write"


def test_every_call_is_recorded_with_its_client_and_never_with_its_key(pos, member, code):
    pos.charge(code, 100)
    pos.charge(code, 100, secret="sk_wrong")
    rows = list(ApiRequest.objects.order_by("pk").values_list("client_id", "status_code", "error_code", "path"))
    assert rows == [
        (pos.api_client.pk, 201, "", "/api/v1/charges"),
        (None, 401, "unauthorized", "/api/v1/charges"),
    ]
    assert not ApiClient.objects.filter(key_digest=pos.secret).exists()  # only its digest is kept


# -- bad bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '"text"', "\xff"], ids=["list", "not-json", "string", "bad-utf8"])
def test_a_body_that_is_not_a_json_object_is_400(pos, raw):
    answer = pos.post("/api/v1/charges", raw=raw)
    assert answer.status_code == 400 and error(answer) == "invalid_request"


def test_a_megabyte_body_is_413(pos, member, code):
    answer = pos.post("/api/v1/charges", raw='{"member_code": "' + code + '", "amount": 100, "x": "' + "a" * 1_000_000 + '"}')
    assert answer.status_code == 413 and error(answer) == "body_too_large"
    assert balance(member) == 3000


def test_unknown_paths_and_methods_answer_in_the_apis_own_shape(pos):
    assert error(pos.get("/api/v1/nothing-here")) == "not_found"
    put = pos.call("PUT", "/api/v1/charges", {})
    assert put.status_code == 405 and error(put) == "method_not_allowed" and put["Allow"] == "GET, POST"


# -- idempotency ------------------------------------------------------------------------------


def test_the_same_key_and_body_answers_the_first_answer_again_and_moves_nothing(pos, member, code):
    first = pos.post("/api/v1/charges", {"member_code": code, "amount": 500}, key="k-1")
    again = pos.post("/api/v1/charges", {"amount": 500, "member_code": code}, key="k-1")  # same body, other order
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"  # byte for byte
    assert balance(member) == 2500 and Charge.objects.count() == 1


def test_the_same_key_with_another_body_is_422(pos, member, code):
    pos.post("/api/v1/charges", {"member_code": code, "amount": 500}, key="k-2")
    other = pos.post("/api/v1/charges", {"member_code": code, "amount": 600}, key="k-2")
    assert other.status_code == 422 and error(other) == "idempotency_key_reused"
    assert balance(member) == 2500


def test_a_refusal_is_kept_too_the_retry_gets_the_same_402(pos, member, code):
    refused = pos.post("/api/v1/charges", {"member_code": code, "amount": 5000}, key="k-3")
    fund(member, 5000)
    again = pos.post("/api/v1/charges", {"member_code": code, "amount": 5000}, key="k-3")
    assert (refused.status_code, again.status_code) == (402, 402) and again.json() == refused.json()
    assert balance(member) == 8000


def test_a_key_whose_first_request_is_still_running_is_409_until_it_is_stale(pos, member, code):
    body = {"member_code": code, "amount": 500}
    pos.post("/api/v1/charges", body, key="k-4")
    claim = IdempotencyKey.objects.get(key="k-4")
    IdempotencyKey.objects.filter(pk=claim.pk).update(finished_at=None, status_code=None, answer="")
    busy = pos.post("/api/v1/charges", body, key="k-4")
    assert busy.status_code == 409 and error(busy) == "idempotency_key_in_use"
    IdempotencyKey.objects.filter(pk=claim.pk).update(created_at=timezone.now() - IdempotencyKey.STALE_AFTER * 2)
    taken_over = pos.post("/api/v1/charges", body, key="k-4")  # the first died: this one runs (its code is used)
    assert taken_over.status_code == 404 and error(taken_over) == "member_code_invalid"


def test_a_key_is_kept_for_24_hours_then_runs_as_new(pos, member):
    body = {"member_id": member.pk, "amount": 100}
    pos.api_client.scopes = [*pos.api_client.scopes, "charges:by_member_id"]
    pos.api_client.save()
    pos.post("/api/v1/charges", body, key="daily")
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        assert pos.post("/api/v1/charges", body, key="daily").status_code == 201
    assert balance(member) == 2800


def test_keys_are_per_client(client, pos, member, code):
    _, secret = ApiClient.issue("另一台收银", ["charges:write"])
    pos.post("/api/v1/charges", {"member_code": code, "amount": 100}, key="shared")
    other = Api(client, secret).post("/api/v1/charges", {"member_code": code, "amount": 100}, key="shared")
    assert other.status_code == 404  # run as its own request: the code is used


@pytest.mark.parametrize("key", ["", "x" * 256, "键"], ids=["empty", "too-long", "not-ascii"])
def test_a_malformed_key_is_400(pos, code, key):
    answer = pos.post("/api/v1/charges", {"member_code": code, "amount": 100}, key=key)
    assert answer.status_code == 400 and error(answer) == "invalid_idempotency_key"


# -- reversals and reading back -----------------------------------------------------------------


def test_reversals_give_back_up_to_what_was_charged(pos, member, code):
    number = pos.charge(code, 1000).json()["charge"]["id"]
    part = pos.post(f"/api/v1/charges/{number}/reversals", {"amount": 300, "reason": "少洗一件"})
    assert part.status_code == 201 and part.json()["balance"] == 2300
    assert part.json()["charge"]["status"] == "partially_reversed"
    too_much = pos.post(f"/api/v1/charges/{number}/reversals", {"amount": 701})
    assert too_much.status_code == 422 and error(too_much) == "reversal_exceeds_charge"
    assert too_much.json()["error"]["reversible"] == 700
    rest = pos.post(f"/api/v1/charges/{number}/reversals", {"reason": "整单取消"})  # no amount: all that is left
    assert rest.status_code == 201 and rest.json()["reversal"]["amount"] == 700
    assert rest.json()["charge"]["status"] == "reversed" and balance(member) == 3000
    done = pos.post(f"/api/v1/charges/{number}/reversals", {})
    assert done.status_code == 422 and error(done) == "reversal_exceeds_charge"
    detail = pos.get(f"/api/v1/charges/{number}").json()["charge"]
    assert [r["amount"] for r in detail["reversals"]] == [300, 700] and detail["amount_reversed"] == 1000
    kinds = list(LedgerEntry.objects.filter(user=member).order_by("pk").values_list("kind", "amount"))
    assert kinds[-3:] == [("spend", -1000), ("spend_reversal", 300), ("spend_reversal", 700)]


@pytest.mark.parametrize("amount", [0, -1, 1.5, "300"])
def test_a_bad_reversal_amount_is_422(pos, code, amount):
    number = pos.charge(code, 1000).json()["charge"]["id"]
    answer = pos.post(f"/api/v1/charges/{number}/reversals", {"amount": amount})
    assert answer.status_code == 422 and error(answer) == "invalid_amount"


def test_another_clients_charge_does_not_exist_for_it(client, pos, code):
    number = pos.charge(code, 1000).json()["charge"]["id"]
    _, secret = ApiClient.issue("别家", ["charges:write", "charges:read"])
    other = Api(client, secret)
    assert error(other.get(f"/api/v1/charges/{number}")) == "charge_not_found"
    reversal = other.post(f"/api/v1/charges/{number}/reversals", {"amount": 100})
    assert reversal.status_code == 404 and error(reversal) == "charge_not_found"


def test_the_charge_list_pages_newest_first_and_filters(pos, member):
    pos.api_client.scopes = [*pos.api_client.scopes, "charges:by_member_id"]
    pos.api_client.save()
    other = make_user("other", openid="oOther")
    fund(other, 1000)
    numbers = [pos.post("/api/v1/charges", {"member_id": member.pk, "amount": 10 + n}).json()["charge"]["id"] for n in range(5)]
    pos.post("/api/v1/charges", {"member_id": other.pk, "amount": 1})
    page = pos.get(f"/api/v1/charges?member_id={member.pk}&limit=2").json()
    assert [c["id"] for c in page["data"]] == numbers[::-1][:2] and page["has_more"]
    rest = pos.get(f"/api/v1/charges?member_id={member.pk}&limit=10&starting_after={page['next_starting_after']}").json()
    assert [c["id"] for c in rest["data"]] == numbers[::-1][2:] and not rest["has_more"]
    later = pos.get("/api/v1/charges?created_after=" + (timezone.now() + timedelta(minutes=1)).isoformat().replace("+", "%2B"))
    assert later.json()["data"] == []
    bad_queries = ("limit=0", "limit=101", "limit=x", "created_after=yesterday", "created_after=2026-02-30T00:00:00")
    for bad in (*bad_queries, "starting_after=CHnope", "member_id=abc"):
        answer = pos.get(f"/api/v1/charges?{bad}")
        assert answer.status_code == 400 and error(answer) == "invalid_request", bad


def test_a_member_reads_as_balance_and_status(pos, member):
    answer = pos.get(f"/api/v1/members/{member.pk}").json()["member"]
    assert answer == {"id": member.pk, "object": "member", "balance": 3000, "status": "active"}
    assert error(pos.get("/api/v1/members/999999")) == "member_not_found"
    assert error(pos.get("/api/v1/members/abc")) == "member_not_found"


def test_answers_are_never_cached(pos, member):
    assert pos.get(f"/api/v1/members/{member.pk}")["Cache-Control"] == "no-store"


def test_a_refusal_of_who_may_do_it_is_not_kept_with_the_key(client, member):
    api_client, secret = ApiClient.issue("游戏服务器", ["charges:write"])
    api = Api(client, secret)
    body = {"member_id": member.pk, "amount": 100}
    assert api.post("/api/v1/charges", body, key="grant-later").status_code == 403
    api_client.scopes = [*api_client.scopes, "charges:by_member_id"]
    api_client.save()
    assert api.post("/api/v1/charges", body, key="grant-later").status_code == 201  # asked again, not replayed
    assert balance(member) == 2900


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/members/²", None),
        ("GET", "/api/v1/members/١", None),
        ("GET", "/api/v1/charges?member_id=²", None),
        ("GET", "/api/v1/charges?limit=²", None),
        ("GET", "/api/v1/charges?created_after=0001-01-01", None),
        ("GET", "/api/v1/charges?starting_after=%00", None),
        ("GET", "/api/v1/charges/CH%00", None),
        ("POST", "/api/v1/charges", '{"member_id": "²", "amount": 100}'),
        ("POST", "/api/v1/charges", '{"member_code": "\\ud800", "amount": 100}'),
        ("POST", "/api/v1/charges", '{"member_code": "88\\u0000", "amount": 100}'),
        ("POST", "/api/v1/charges", '{"a": ' + "[" * 20000 + "]" * 20000 + "}"),
    ],
    ids=[
        "superscript",
        "arabic-digit",
        "list-member",
        "list-limit",
        "year-1",
        "nul-query",
        "nul-path",
        "post-superscript",
        "surrogate",
        "nul-body",
        "deep",
    ],
)
def test_odd_input_is_a_clear_4xx_never_a_500(pos, member, method, path, body):
    pos.api_client.scopes = [*pos.api_client.scopes, "charges:by_member_id"]
    pos.api_client.save()
    answer = pos.call(method, path, raw=body) if body else pos.get(path)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.content[:200])
    assert "code" in answer.json()["error"]
    assert balance(member) == 3000

"""The merchant API, /api/v1/ (docs/merchant-api.md): JSON for the merchant's own servers.

Every call: a secret key (`Authorization: Bearer sk_…`) of an active API client with the
scope the endpoint needs, a rate limit per client, a body that is one JSON object of at
most MAX_BODY bytes, answers and errors in one JSON shape (`{"error": {"code", "message"}}`,
Chinese messages), and a row in ApiRequest. A POST may carry an `Idempotency-Key`: the same
key and body within 24 hours answers the first answer again and moves nothing; the same
key with another body is 422; while the first request with it runs, 409.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from accounts.models import User
from common import ratelimit
from common.http import client_ip
from common.statements import Statement
from wallet.models import ApiClient, ApiRequest, Charge, ChargeError, IdempotencyKey, Reversal
from wxproto.beijing import BEIJING, beijing_iso

logger = logging.getLogger(__name__)

PREFIX = "/api/v1/"
DIGITS = re.compile(r"[0-9]{1,18}")
MAX_BODY = 64 * 1024
MAX_KEY_LENGTH = 255
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
# A client's 最近调用 is written at most this often (not one more UPDATE per call).
LAST_USED_EVERY = timedelta(minutes=1)

MESSAGES = {
    "unauthorized": "缺少或无效的 API 密钥（Authorization: Bearer sk_…）",
    "forbidden_scope": "该 API 客户端没有此操作的权限",
    "too_many_requests": "请求太频繁，请稍后再试",
    "invalid_request": "请求格式不正确：请求体须为 JSON 对象",
    "body_too_large": f"请求体过大（上限 {MAX_BODY // 1024} KB）",
    "not_found": "请求的地址不存在",
    "method_not_allowed": "不支持这种请求方式",
    "charge_not_found": "消费记录不存在",
    "member_not_found": "会员不存在或已停用",
    "idempotency_key_reused": "该 Idempotency-Key 已用于另一个请求体",
    "idempotency_key_in_use": "使用该 Idempotency-Key 的请求仍在处理中，请稍后重试",
    "invalid_idempotency_key": f"Idempotency-Key 须为 1 至 {MAX_KEY_LENGTH} 个可打印 ASCII 字符（含空格）",
    "server_busy": "系统繁忙，请稍后再试",
    "server_error": "系统出错了，请稍后再试",
}
# Answers an Idempotency-Key does not keep: a retry with the same key is asked again.
NOT_KEPT = {401, 403, 409, 429}
ERROR_STATUS = {
    "invalid_amount": 422,
    "insufficient_balance": 402,
    "member_code_invalid": 404,
    "member_not_found": 404,
    "reversal_exceeds_charge": 422,
    "duplicate_request": 409,
}


class ApiError(Exception):
    def __init__(self, code: str, status: int, message: str | None = None, **details):
        super().__init__(code)
        self.code, self.status, self.message, self.details = code, status, message or MESSAGES[code], details

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def error_body(code: str, message: str | None = None) -> dict:
    return {"error": {"code": code, "message": message or MESSAGES.get(code, MESSAGES["server_error"])}}


def _answer(status: int, body: dict) -> HttpResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    error = body.get("error")
    response.error_code = error.get("code", "") if isinstance(error, dict) else ""  # type: ignore[attr-defined]
    return response


def _replay(found: IdempotencyKey) -> HttpResponse:
    """The first answer given with this key, byte for byte."""
    response = HttpResponse(found.answer, status=found.status_code or 200, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Idempotent-Replayed"] = "true"
    return response


def _client(request: HttpRequest) -> ApiClient:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    client = ApiClient.authenticate(secret.strip()) if scheme.lower() == "bearer" else None
    if client is None:
        raise ApiError("unauthorized", 401)
    return client


def _body(request: HttpRequest) -> dict:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = request.read(MAX_BODY + 1) if length <= MAX_BODY else b"x" * (MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError("body_too_large", 413)
    try:
        data = json.loads(raw or b"{}")
        # Text the database can store: no lone surrogate, no NUL (PostgreSQL refuses it).
        json.dumps(data, ensure_ascii=False).encode()
        storable = not _has_nul(data)
    except (ValueError, UnicodeError, RecursionError):
        data, storable = None, False
    if not isinstance(data, dict) or not storable:
        raise ApiError("invalid_request", 400)
    return data


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _number(text: str) -> int | None:
    """A positive decimal number of at most 18 ASCII digits (no ², no ١), else None."""
    return int(text) if DIGITS.fullmatch(text) else None


def _idempotency_key(request: HttpRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise ApiError("invalid_idempotency_key", 400)
    return key


def _claim(client: ApiClient, key: str, digest: str) -> IdempotencyKey | HttpResponse:
    """The key's claim for this request, or the answer when it is not this request's to run."""
    now = timezone.now()
    found: IdempotencyKey | None = None
    for _ in range(2):
        try:
            with transaction.atomic():
                claim = IdempotencyKey(client=client, key=key, request_digest=digest, created_at=now)
                claim.pk = _CLAIM.run(client=client.pk, key=key, request_digest=digest, created_at=now, answer="")
                return claim
        except IntegrityError:
            found = IdempotencyKey.objects.filter(client=client, key=key).first()
        if found is None:  # deleted meanwhile (its request failed): the caller may retry
            raise ApiError("idempotency_key_in_use", 409)
        if found.created_at >= now - IdempotencyKey.KEEP_FOR:
            break
        # Kept past its 24 hours: the key is new again.
        IdempotencyKey.objects.filter(pk=found.pk, created_at=found.created_at).delete()
    if found is None:
        raise ApiError("idempotency_key_in_use", 409)
    if found.request_digest != digest:
        raise ApiError("idempotency_key_reused", 422)
    if found.finished_at is not None:
        return _replay(found)
    stale = now - IdempotencyKey.STALE_AFTER
    if found.created_at < stale and IdempotencyKey.objects.filter(
        pk=found.pk, finished_at__isnull=True, created_at=found.created_at
    ).update(created_at=now):
        return found  # its first request died before it finished: this one runs it
    raise ApiError("idempotency_key_in_use", 409)


def endpoint(method: str, scope: str) -> Callable:
    """A merchant API view: `view(request, client, data, **kwargs) -> (status, body)`, run in
    one transaction that also finishes the request's idempotency key (POST)."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, **kwargs) -> HttpResponse:
            client: ApiClient | None = None
            key = None
            try:
                if request.method != method:
                    response = _answer(405, error_body("method_not_allowed"))
                    response["Allow"] = method
                else:
                    client = _client(request)
                    if not ratelimit.allow(f"api:{client.pk}", settings.MERCHANT_API_REQUESTS_PER_MINUTE, 60):
                        raise ApiError("too_many_requests", 429)
                    if not client.has_scope(scope):
                        raise ApiError("forbidden_scope", 403, scope=scope)
                    data = _body(request) if method == "POST" else {}
                    key = _idempotency_key(request) if method == "POST" else None
                    response = _run(request, view, client, data, key, kwargs)
            except ApiError as exc:
                response = _answer(exc.status, exc.body())
            except DatabaseError:
                logger.exception("%s %s failed", request.method, request.path)
                response = _answer(503, error_body("server_busy"))
            _record(request, client, key, response)
            return response

        wrapper.merchant_api = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _run(request, view, client: ApiClient, data: dict, key: str | None, kwargs) -> HttpResponse:
    claim = None
    if key is not None:
        digest = hashlib.sha256(
            f"{request.method} {request.path}\n".encode() + json.dumps(data, sort_keys=True).encode()
        ).hexdigest()
        claimed = _claim(client, key, digest)
        if isinstance(claimed, HttpResponse):
            return claimed
        claim = claimed
    try:
        with transaction.atomic():
            try:
                status, body = view(request, client, data, **kwargs)
            except ApiError as exc:
                status, body = exc.status, exc.body()
            except ChargeError as exc:
                status = ERROR_STATUS.get(exc.code, 422)
                body = {"error": {"code": exc.code, "message": exc.message, **exc.details}}
            response = _answer(status, body)
            if claim is not None and status not in NOT_KEPT:
                # The answer, as sent, is kept with the money it moved: both or neither.
                _FINISH.run(pk=claim.pk, finished_at=timezone.now(), status_code=status, answer=response.content.decode())
            elif claim is not None:
                # Who may do what, and how often, is asked again on the next try.
                IdempotencyKey.objects.filter(pk=claim.pk).delete()
    except Exception:
        if claim is not None:
            IdempotencyKey.objects.filter(pk=claim.pk, finished_at__isnull=True).delete()  # a retry may run it
        raise
    now = timezone.now()
    if client.last_used_at is None or client.last_used_at < now - LAST_USED_EVERY:
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
    return response


def _record(request: HttpRequest, client: ApiClient | None, key: str | None, response: HttpResponse) -> None:
    try:
        _RECORD.run(
            client=client.pk if client else None,
            method=(request.method or "")[:8],
            path=request.path[:200],
            status_code=response.status_code,
            error_code=getattr(response, "error_code", "")[:40],
            idempotency_key=(key or "")[:255],
            replayed=response.has_header("Idempotent-Replayed"),
            remote_addr=client_ip(request),
            created_at=timezone.now(),
        )
    except DatabaseError:
        logger.exception("could not record an API request")


# The statements every call sends, compiled once (common/statements.py).
_CLAIM = Statement.insert(IdempotencyKey, ["client", "key", "request_digest", "created_at", "answer"])
_FINISH = Statement.update_by_pk(IdempotencyKey, ["finished_at", "status_code", "answer"])
_RECORD = Statement.insert(
    ApiRequest,
    ["client", "method", "path", "status_code", "error_code", "idempotency_key", "replayed", "remote_addr", "created_at"],
)

# -- answers -------------------------------------------------------------------------------


def reversal_dict(reversal: Reversal) -> dict:
    return {
        "id": reversal.number,
        "object": "reversal",
        "charge": reversal.charge.number,
        "amount": reversal.amount,
        "reason": reversal.reason,
        "created_at": beijing_iso(reversal.created_at),
    }


def charge_dict(charge: Charge, reversals: list[Reversal] | None = None) -> dict:
    """A charge as the API shows it; `reversals` when the caller has them (a new charge has none)."""
    return {
        "id": charge.number,
        "object": "charge",
        "amount": charge.amount,
        "amount_reversed": charge.reversed_amount,
        "status": charge.status,
        "description": charge.description,
        "store": charge.store,
        "member_id": charge.user_id,
        "created_at": beijing_iso(charge.created_at),
        "reversals": [reversal_dict(r) for r in (charge.reversals.order_by("pk") if reversals is None else reversals)],
    }


def _text(data: dict, name: str, limit: int) -> str:
    value = data.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError("invalid_request", 400, f"{name} 须为不超过 {limit} 个字符的字符串", field=name)
    return value.strip()


def _member_id(value) -> int:
    number = _number(str(value)) if isinstance(value, int | str) and not isinstance(value, bool) else None
    if number is None:
        raise ApiError("member_not_found", 404)
    return number


def _own_charge(client: ApiClient, number: str) -> Charge:
    charge = Charge.objects.filter(number=number, client=client).first()
    if charge is None:
        raise ApiError("charge_not_found", 404)
    return charge


# -- endpoints -----------------------------------------------------------------------------


@endpoint("POST", "charges:write")
def create_charge(request, client: ApiClient, data: dict):
    """POST /api/v1/charges: spend a member's balance by their member code (or member_id)."""
    code, member_id = data.get("member_code"), data.get("member_id")
    if (code is None) == (member_id is None):
        raise ApiError("invalid_request", 400, "请提供 member_code 或 member_id 其中之一")
    if member_id is not None and not client.has_scope("charges:by_member_id"):
        raise ApiError("forbidden_scope", 403, scope="charges:by_member_id")
    if code is not None and not isinstance(code, str):
        raise ApiError("member_code_invalid", 404, "会员码无效或已过期，请让顾客刷新会员码")
    description, store = _text(data, "description", 200), _text(data, "store", 64)
    if client.store and store and store != client.store:
        raise ApiError("invalid_request", 400, f"该 API 客户端只能记在门店「{client.store}」名下", field="store")
    charge = Charge.create(
        amount=data.get("amount"),  # type: ignore[arg-type]  # Charge.check_amount checks it
        member_code=code.strip() if code is not None else None,
        user_id=_member_id(member_id) if member_id is not None else None,
        description=description,
        store=client.store or store,
        client=client,
    )
    return 201, {"charge": charge_dict(charge, reversals=[]), "balance": charge.entry.balance_after}


@endpoint("POST", "charges:write")
def create_reversal(request, client: ApiClient, data: dict, number: str):
    """POST /api/v1/charges/<id>/reversals: give back part or all of a charge (all that is left
    when no amount is given)."""
    charge = _own_charge(client, number)
    amount = data.get("amount", charge.reversible_amount)
    if amount == 0 and charge.reversible_amount == 0:
        raise ChargeError("reversal_exceeds_charge", "这笔消费已全部撤销", reversible=0)
    reversal = charge.reverse(amount, _text(data, "reason", 200), client=client)
    return 201, {"reversal": reversal_dict(reversal), "charge": charge_dict(charge), "balance": reversal.entry.balance_after}


@endpoint("GET", "charges:read")
def charge_detail(request, client: ApiClient, data: dict, number: str):
    """GET /api/v1/charges/<id>."""
    return 200, {"charge": charge_dict(_own_charge(client, number))}


@endpoint("GET", "charges:read")
def charge_list(request, client: ApiClient, data: dict):
    """GET /api/v1/charges?member_id=&created_after=&starting_after=&limit=: newest first, in
    pages (`starting_after` = the last id of the page before)."""
    q = request.GET
    charges = Charge.objects.filter(client=client).order_by("-pk")
    if q.get("member_id"):
        member = _number(q["member_id"])
        if member is None:
            raise ApiError("invalid_request", 400, "member_id 须为会员编号（数字）")
        charges = charges.filter(user_id=member)
    if q.get("created_after"):
        try:
            after = parse_datetime(q["created_after"])
        except ValueError:  # well-formed but impossible (February 30th)
            after = None
        if after is None or not 1970 <= after.year <= 9998:
            raise ApiError("invalid_request", 400, "created_after 须为 ISO 8601 时间，如 2026-12-01T00:00:00+08:00")
        charges = charges.filter(created_at__gt=after if after.tzinfo else after.replace(tzinfo=BEIJING))
    if q.get("starting_after"):
        cursor = Charge.objects.filter(number=q["starting_after"], client=client).values_list("pk", flat=True).first()
        if cursor is None:
            raise ApiError("invalid_request", 400, "starting_after 不是本客户端的消费单号")
        charges = charges.filter(pk__lt=cursor)
    limit = q.get("limit", str(PAGE_SIZE))
    if _number(limit) is None or not 1 <= int(limit) <= MAX_PAGE_SIZE:
        raise ApiError("invalid_request", 400, f"limit 须为 1 至 {MAX_PAGE_SIZE} 之间的整数")
    page = list(charges.prefetch_related("reversals")[: int(limit) + 1])
    more = len(page) > int(limit)
    page = page[: int(limit)]
    return 200, {
        "object": "list",
        "data": [charge_dict(c) for c in page],
        "has_more": more,
        "next_starting_after": page[-1].number if more else None,
    }


@endpoint("GET", "members:read")
def member_detail(request, client: ApiClient, data: dict, member_id: str):
    """GET /api/v1/members/<id>: the balance and whether the member can spend."""
    user = User.objects.filter(pk=_member_id(member_id)).first()
    if user is None:
        raise ApiError("member_not_found", 404)
    return 200, {
        "member": {
            "id": user.pk,
            "object": "member",
            "balance": user.balance,
            "status": "active" if user.is_active else "disabled",
        }
    }


@csrf_exempt
def create_or_list_charges(request):
    """/api/v1/charges: POST creates a charge, GET lists them."""
    if request.method == "POST":
        return create_charge(request)
    if request.method == "GET":
        return charge_list(request)
    response = _answer(405, error_body("method_not_allowed"))
    response["Allow"] = "GET, POST"
    return response


create_or_list_charges.merchant_api = True  # type: ignore[attr-defined]

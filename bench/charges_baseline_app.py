"""The bare-Django baseline of bench/charges_vs_baseline.py: settings, URLconf and WSGI app in one.

No apps, no middleware, no ORM: POST /api/v1/charges by member code, with the statements the
project sends written by hand on the project's own schema (the client by its key's digest,
the rate-limit window, the Idempotency-Key claim, then in one transaction the code, the
member, the balance, the ledger row, the charge, the outbox event and the key's answer, and
the call's log row), answering the same JSON. What the project spends beyond this is the
framework and our code around the same SQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import environ

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEBUG = False
SECRET_KEY = "bench-baseline-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
DATABASES = {"default": environ.Env().db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DATABASE_CONN_MAX_AGE", "600"))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def _answer(status: int, body: dict) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def _error(status: int, code: str) -> JsonResponse:
    return _answer(status, {"error": {"code": code, "message": code}})


@csrf_exempt
def charges(request):
    secret = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    key = request.headers.get("Idempotency-Key")
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, store FROM wallet_apiclient WHERE key_digest = %s AND revoked_at IS NULL",
            [hashlib.sha256(secret.encode()).hexdigest()],
        )
        row = cursor.fetchone()
        if row is None:
            return _error(401, "unauthorized")
        client_id, store = row
        epoch = int(datetime.now(UTC).timestamp())
        window = datetime.fromtimestamp(epoch - epoch % 60, tz=UTC)
        cursor.execute(
            "UPDATE wxrecharge_ratelimitwindow SET hits = hits + 1 WHERE key = %s AND window_start = %s",
            [f"api:{client_id}", window],
        )
        if cursor.rowcount == 0:
            cursor.execute(
                "INSERT INTO wxrecharge_ratelimitwindow (key, window_start, hits) VALUES (%s, %s, 1) ON CONFLICT DO NOTHING",
                [f"api:{client_id}", window],
            )
        cursor.execute(
            "SELECT hits FROM wxrecharge_ratelimitwindow WHERE key = %s AND window_start = %s", [f"api:{client_id}", window]
        )
        cursor.fetchone()
        digest = hashlib.sha256(f"POST {request.path}\n".encode() + json.dumps(body, sort_keys=True).encode()).hexdigest()
        cursor.execute(
            "DELETE FROM wallet_idempotencykey WHERE client_id = %s AND key = %s AND created_at < now() - interval '24 hours'",
            [client_id, key],
        )
        cursor.execute(
            "INSERT INTO wallet_idempotencykey (client_id, key, request_digest, created_at, answer)"
            " VALUES (%s, %s, %s, now(), '')"
            " ON CONFLICT DO NOTHING RETURNING id",
            [client_id, key, digest],
        )
        claimed = cursor.fetchone()
        if claimed is None:
            cursor.execute(
                "SELECT finished_at, status_code, answer FROM wallet_idempotencykey WHERE client_id = %s AND key = %s",
                [client_id, key],
            )
            finished_at, status, answer = cursor.fetchone()
            response = (
                HttpResponse(answer, status=status, content_type="application/json")
                if finished_at
                else _error(409, "idempotency_key_in_use")
            )
            _log(cursor, client_id, response.status_code, key)
            return response
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, user_id, used_at, expires_at > now() FROM wallet_membercode WHERE code = %s FOR UPDATE",
                [body["member_code"]],
            )
            code = cursor.fetchone()
            if code is None or code[2] is not None or not code[3]:
                status, answer = 404, {"error": {"code": "member_code_invalid", "message": "member_code_invalid"}}
            else:
                code_id, user_id = code[0], code[1]
                cursor.execute("UPDATE wallet_membercode SET used_at = now() WHERE id = %s", [code_id])
                cursor.execute("SELECT 1 FROM accounts_user WHERE is_active AND id = %s LIMIT 1", [user_id])
                cursor.fetchone()
                cursor.execute("SELECT balance FROM accounts_user WHERE id = %s FOR UPDATE", [user_id])
                balance = cursor.fetchone()[0] - body["amount"]
                cursor.execute("UPDATE accounts_user SET balance = %s WHERE id = %s", [balance, user_id])
                cursor.execute(
                    "INSERT INTO orders_ledgerentry (user_id, amount, kind, balance_after, reason, created_at)"
                    " VALUES (%s, %s, 'spend', %s, '', now()) RETURNING id",
                    [user_id, -body["amount"], balance],
                )
                entry_id = cursor.fetchone()[0]
                # The oldest lot with something left pays (the benchmark's members have one: an
                # operator's credit, bonus only).
                cursor.execute(
                    "SELECT id FROM orders_lot WHERE user_id = %s AND (paid_left > 0 OR bonus_left > 0) ORDER BY id",
                    [user_id],
                )
                lot_id = cursor.fetchone()[0]
                cursor.execute("UPDATE orders_lot SET bonus_left = bonus_left - %s WHERE id = %s", [body["amount"], lot_id])
                cursor.execute(
                    "INSERT INTO orders_lotmove (entry_id, lot_id, paid, bonus) VALUES (%s, %s, 0, %s)",
                    [entry_id, lot_id, -body["amount"]],
                )
                number = "CH" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(5)
                cursor.execute(
                    "INSERT INTO wallet_charge (number, user_id, amount, reversed_amount, description, store, client_id,"
                    " member_code_id, entry_id, created_at) VALUES (%s, %s, %s, 0, '', %s, %s, %s, %s, now()) RETURNING id",
                    [number, user_id, body["amount"], store, client_id, code_id, entry_id],
                )
                cursor.fetchone()
                charge = {"id": number, "object": "charge", "amount": body["amount"], "member_id": user_id}
                cursor.execute(
                    "INSERT INTO outbox_event (event_id, type, data, created_at) VALUES (%s, 'charge.succeeded', %s, now())",
                    ["evt_" + secrets.token_hex(12), json.dumps({**charge, "balance": balance})],
                )
                status, answer = 201, {"charge": charge, "balance": balance}
            cursor.execute(
                "UPDATE wallet_idempotencykey SET finished_at = now(), status_code = %s, answer = %s"
                " WHERE client_id = %s AND key = %s",
                [status, _answer(status, answer).content.decode(), client_id, key],
            )
    except IntegrityError:
        return _error(409, "conflict")
    with connection.cursor() as cursor:
        _log(cursor, client_id, status, key)
    return _answer(status, answer)


def _log(cursor, client_id: int, status: int, key: str | None) -> None:
    cursor.execute(
        "INSERT INTO wallet_apirequest (client_id, method, path, status_code, error_code, idempotency_key, replayed,"
        " remote_addr, created_at) VALUES (%s, 'POST', '/api/v1/charges', %s, '', %s, false, '127.0.0.1', now())",
        [client_id, status, key or ""],
    )


urlpatterns = [path("api/v1/charges", charges)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

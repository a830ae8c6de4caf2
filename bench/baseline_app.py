"""The bare-Django baseline of bench/notify_vs_baseline.py: settings, URLconf and WSGI app in one.

No apps, no middleware, no ORM: the payment notify's statements written by hand on the
project's own schema, with the same work around them: read the body; v2: parse and verify
the XML with the project's wxproto.v2 and answer WeChat's XML; v3 (when WECHAT_PAY_PUBLIC_KEY
is set): keep the signature headers, verify WeChat's signature and decrypt the AES-GCM
resource with the project's wxproto.v3, answer 204. What the project spends beyond this is
the framework and our code around the same SQL.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import datetime
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
API_KEY = os.environ["WECHAT_API_KEY"]
APPIDS = {os.environ["WECHAT_APPID"]}
MCH_ID = os.environ["WECHAT_MCH_ID"]

from django.db import connection, transaction  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from wxproto import v2 as wxpay  # noqa: E402
from wxproto import v3  # noqa: E402

SUCCESS = wxpay.to_xml({"return_code": "SUCCESS", "return_msg": "OK"})
FAIL = wxpay.to_xml({"return_code": "FAIL", "return_msg": "FAIL"})
# API v3: WeChat's key, and the notify headers kept on the record (as the project keeps them).
V3_KEYS = (
    v3.KeyStore(
        public_key=v3.load_public_key(Path(os.environ["WECHAT_PAY_PUBLIC_KEY"]).read_bytes()),
        public_key_id=os.environ["WECHAT_PAY_PUBLIC_KEY_ID"],
    )
    if os.environ.get("WECHAT_PAY_PUBLIC_KEY")
    else None
)
APIV3_KEY = os.environ.get("WECHAT_APIV3_KEY", "")
V3_HEADERS = {
    "HTTP_WECHATPAY_TIMESTAMP": "Wechatpay-Timestamp",
    "HTTP_WECHATPAY_NONCE": "Wechatpay-Nonce",
    "HTTP_WECHATPAY_SIGNATURE": "Wechatpay-Signature",
    "HTTP_WECHATPAY_SERIAL": "Wechatpay-Serial",
    "HTTP_WECHATPAY_SIGNATURE_TYPE": "Wechatpay-Signature-Type",
    "HTTP_REQUEST_ID": "Request-ID",
}


def record(body: bytes, remote_addr: str | None, v3_headers: str | None = None) -> int:
    """The log row, first: a v2 notify's, or a v3 one's with its signature headers."""
    with connection.cursor() as cursor:
        if v3_headers is None:
            cursor.execute(
                "INSERT INTO payments_notification (kind, api, raw_body, headers, remote_addr, received_at,"
                " signature_valid, out_trade_no, out_refund_no, outcome, detail, traceback)"
                " VALUES ('payment', 'v2', %s, '{}', %s, now(), NULL, '', '', 'received', '', '')"
                " RETURNING id",
                [body, remote_addr],
            )
        else:
            cursor.execute(
                "INSERT INTO payments_notification (kind, api, raw_body, headers, remote_addr, received_at,"
                " signature_valid, out_trade_no, out_refund_no, outcome, detail, traceback)"
                " VALUES ('payment', 'v3', %s, %s, %s, now(), NULL, '', '', 'received', '', '')"
                " RETURNING id",
                [body, v3_headers, remote_addr],
            )
        return cursor.fetchone()[0]


def credit(log_id: int, out_trade_no: str, total: int, transaction_id: str, paid_at: datetime | None = None) -> None:
    """The payment's statements, in one transaction: credit it once (paid now, unless `paid_at`
    says when), and the log row's outcome."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, user_id, amount, transaction_id, bonus, bonus_valid_days, package_id, package_limit"
            " FROM orders_rechargeorder WHERE out_trade_no = %s FOR UPDATE",
            [out_trade_no],
        )
        order_id, user_id, amount, paid, *_offer = cursor.fetchone()
        outcome = "duplicate"
        if paid is None and amount == total:
            cursor.execute("SELECT balance FROM accounts_user WHERE id = %s FOR UPDATE", [user_id])
            balance = cursor.fetchone()[0] + amount
            if paid_at is None:
                cursor.execute(
                    "UPDATE orders_rechargeorder SET status = 1, transaction_id = %s, paid_at = now(),"
                    " updated_at = now() WHERE id = %s",
                    [transaction_id, order_id],
                )
            else:
                cursor.execute(
                    "UPDATE orders_rechargeorder SET status = 1, transaction_id = %s, paid_at = %s,"
                    " updated_at = now() WHERE id = %s",
                    [transaction_id, paid_at, order_id],
                )
            cursor.execute("UPDATE accounts_user SET balance = %s WHERE id = %s", [balance, user_id])
            cursor.execute(
                "INSERT INTO orders_ledgerentry (user_id, amount, kind, order_id, balance_after, reason,"
                " created_at) VALUES (%s, %s, 'recharge', %s, %s, '', now()) RETURNING id",
                [user_id, amount, order_id, balance],
            )
            entry_id = cursor.fetchone()[0]
            # The recharge's lot of stored value and its share of it.
            cursor.execute(
                "INSERT INTO orders_lot (user_id, order_id, paid, bonus, paid_left, bonus_left, created_at)"
                " VALUES (%s, %s, %s, 0, %s, 0, now()) RETURNING id",
                [user_id, order_id, amount, amount],
            )
            lot_id = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO orders_lotmove (entry_id, lot_id, paid, bonus) VALUES (%s, %s, %s, 0)",
                [entry_id, lot_id, amount],
            )
            cursor.execute(
                "INSERT INTO outbox_event (event_id, type, data, created_at) VALUES (%s, 'recharge.succeeded', %s, now())",
                [
                    "evt_" + secrets.token_hex(12),
                    json.dumps({"order": out_trade_no, "member_id": user_id, "amount": amount, "balance": balance}),
                ],
            )
            outcome = "applied"
        cursor.execute(
            "UPDATE payments_notification SET outcome = %s, signature_valid = true, out_trade_no = %s,"
            " processed_at = now() WHERE id = %s",
            [outcome, out_trade_no, log_id],
        )


@csrf_exempt
def notify(request):
    body = request.body
    log_id = record(body, request.META.get("REMOTE_ADDR"))
    fields = wxpay.parse_xml(body)
    if not wxpay.verify(fields, API_KEY) or fields["appid"] not in APPIDS or fields["mch_id"] != MCH_ID:
        return HttpResponse(FAIL, content_type="text/xml")
    credit(log_id, fields["out_trade_no"], int(fields["total_fee"]), fields["transaction_id"])
    return HttpResponse(SUCCESS, content_type="text/xml")


@csrf_exempt
def notify_v3(request):
    body = request.body
    headers = {name: request.META[key] for key, name in V3_HEADERS.items() if key in request.META}
    log_id = record(body, request.META.get("REMOTE_ADDR"), json.dumps(headers))
    try:
        v3.verify_signed(V3_KEYS, headers, body)
        envelope = json.loads(body)
        resource = json.loads(
            v3.aes_gcm_decrypt(
                APIV3_KEY,
                envelope["resource"]["nonce"],
                envelope["resource"]["associated_data"],
                envelope["resource"]["ciphertext"],
            )
        )
    except ValueError:
        return HttpResponse(status=401)
    if resource["mchid"] != MCH_ID or resource["appid"] not in APPIDS or resource["trade_state"] != "SUCCESS":
        return HttpResponse(status=400)
    paid_at = datetime.fromisoformat(resource["success_time"])
    credit(log_id, resource["out_trade_no"], resource["amount"]["total"], resource["transaction_id"], paid_at)
    return HttpResponse(status=204)


urlpatterns = [path("payments/wechat/notify/", notify), path("payments/wechat/v3/notify/", notify_v3)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

"""The bare-Django baseline of bench/notify_vs_baseline.py: settings, URLconf and WSGI app in one.

No apps, no middleware, no ORM: the payment notify's statements written by hand on the
project's own schema, with the same work around them (read the body, parse and verify the
XML with the project's wxproto.v2, answer WeChat's XML). What the project spends
beyond this is the framework and our code around the same SQL.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
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

SUCCESS = wxpay.to_xml({"return_code": "SUCCESS", "return_msg": "OK"})
FAIL = wxpay.to_xml({"return_code": "FAIL", "return_msg": "FAIL"})


@csrf_exempt
def notify(request):
    body = request.body
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO payments_notification (kind, api, raw_body, headers, remote_addr, received_at, signature_valid,"
            " out_trade_no, out_refund_no, outcome, detail, traceback)"
            " VALUES ('payment', 'v2', %s, '{}', %s, now(), NULL, '', '', 'received', '', '')"
            " RETURNING id",
            [body, request.META.get("REMOTE_ADDR")],
        )
        log_id = cursor.fetchone()[0]
    fields = wxpay.parse_xml(body)
    if not wxpay.verify(fields, API_KEY) or fields["appid"] not in APPIDS or fields["mch_id"] != MCH_ID:
        return HttpResponse(FAIL, content_type="text/xml")
    out_trade_no, total_fee = fields["out_trade_no"], int(fields["total_fee"])
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, user_id, amount, transaction_id, bonus, bonus_valid_days, package_id, package_limit"
            " FROM orders_rechargeorder WHERE out_trade_no = %s FOR UPDATE",
            [out_trade_no],
        )
        order_id, user_id, amount, paid, *_offer = cursor.fetchone()
        outcome = "duplicate"
        if paid is None and amount == total_fee:
            cursor.execute("SELECT balance FROM accounts_user WHERE id = %s FOR UPDATE", [user_id])
            balance = cursor.fetchone()[0] + amount
            cursor.execute(
                "UPDATE orders_rechargeorder SET status = 1, transaction_id = %s, paid_at = now(),"
                " updated_at = now() WHERE id = %s",
                [fields["transaction_id"], order_id],
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
    return HttpResponse(SUCCESS, content_type="text/xml")


urlpatterns = [path("payments/wechat/notify/", notify)]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

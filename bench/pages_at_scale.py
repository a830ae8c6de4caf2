"""Pages at 100,000 orders: the user's history and the admin, timed in process with their query counts.

    .venv/bin/python bench/pages_at_scale.py [--orders 100000]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth). It makes a scratch
database with the project's schema, one user with 100,000 orders and as many ledger rows
(inserted with generate_series), a user with 20 orders, and a staff account, then times
each page through Django's test client (median of several runs, after a warm-up) and
counts its SQL queries: the history's first page and its page 4,000 (following the
"更多" cursor), the same page for the 20-order user, the admin order list, the admin
search by order number, and the admin page of the user with 100,000 ledger rows.
It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "postgres"),
}
NAME = "wxr_bench_pages"


def prepare(orders: int) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{NAME}"')
        conn.execute(f'CREATE DATABASE "{NAME}"')
    env = {**os.environ, "DJANGO_DEBUG": "1"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(dbname=NAME, **PG) as conn:

        def user(name: str, balance: int) -> int:
            return conn.execute(
                "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name,"
                " email, is_staff, is_active, date_joined, balance, mp_session_key) VALUES ('!', false,"
                " %s, '', '', '', false, true, now(), %s, '') RETURNING id",
                [name, balance],
            ).fetchone()[0]

        def orders_for(user_id: int, count: int, prefix: str) -> None:
            conn.execute(
                "INSERT INTO orders_rechargeorder (out_trade_no, user_id, amount, status, channel, openid, prepay_id,"
                " trade_type, pay_url, close_reason, prepay_error, expires_at, transaction_id, paid_at,"
                " refunded_amount, bonus, created_at, updated_at)"
                " SELECT %s || lpad(n::text, 10, '0'), %s, 1000, 1, 'jsapi', 'oBig', '', 'JSAPI', '', '', '', now(),"
                " '42' || %s || lpad(n::text, 10, '0'), now() - (n || ' seconds')::interval, 0, 0,"
                " now() - (n || ' seconds')::interval, now() FROM generate_series(1, %s) n",
                [prefix, user_id, prefix, count],
            )
            conn.execute(
                "INSERT INTO orders_ledgerentry (user_id, amount, kind, order_id, balance_after, reason, created_at)"
                " SELECT user_id, amount, 'recharge', id, 1000 * row_number() OVER (ORDER BY created_at), '', created_at"
                " FROM orders_rechargeorder WHERE user_id = %s",
                [user_id],
            )

        big = user("big", 1000 * orders)
        orders_for(big, orders, "BIG")
        orders_for(user("small", 20 * 1000), 20, "SMALL")
        conn.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    os.environ.update(
        DATABASE_URL=f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{NAME}", DJANGO_SETTINGS_MODULE="tests.settings"
    )
    started = time.perf_counter()
    prepare(args.orders)
    os.environ["DJANGO_DEBUG"] = "0"  # as in production: cached templates, no debug bookkeeping
    print(f"prepared {args.orders} orders and ledger rows in {time.perf_counter() - started:.0f}s")

    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from orders.models import RechargeOrder

    big, small = User.objects.get(username="big"), User.objects.get(username="small")
    staff = User.objects.create_superuser("bench-admin", "", "x")
    user_client, small_client, admin_client = Client(), Client(), Client()
    user_client.force_login(big)
    small_client.force_login(small)
    admin_client.force_login(staff)

    from urllib.parse import urlencode

    from common.paging import cursor_of as _cursor  # the "更多" link's cursor after a row

    deep = RechargeOrder.objects.filter(user=big).order_by("-created_at", "-pk")[20 * 3999 - 1]
    number = RechargeOrder.objects.filter(user=big).order_by("-created_at").values_list("out_trade_no", flat=True)[5000]
    pages = [
        ("history, page 1 (100,000 orders)", user_client, "/orders/"),
        ("history, page 4,000 (100,000 orders)", user_client, f"/orders/?{urlencode({'before': _cursor(deep)})}"),
        ("history, page 1 (20 orders)", small_client, "/orders/"),
        ("admin order list", admin_client, "/admin/orders/rechargeorder/"),
        ("admin search by order number", admin_client, f"/admin/orders/rechargeorder/?q={number}"),
        ("admin search by its last 6 digits", admin_client, f"/admin/orders/rechargeorder/?q={number[-6:]}"),
        ("admin search by part of a user name", admin_client, "/admin/orders/rechargeorder/?q=ig"),
        (
            "admin list, paid today, ¥5–¥50",
            admin_client,
            "/admin/orders/rechargeorder/?paid_at__from=" + time.strftime("%Y-%m-%d") + "&amount__from=5&amount__to=50",
        ),
        ("admin user page (100,000 ledger rows)", admin_client, f"/admin/accounts/user/{big.pk}/change/"),
    ]
    print(f"\n{'page':42} {'median ms':>10} {'queries':>8}")
    results = {}
    for label, client, url in pages:
        assert client.get(url).status_code == 200, (label, url)
        times = []
        for _ in range(args.runs):
            with CaptureQueriesContext(connection) as queries:
                begun = time.perf_counter()
                client.get(url)
                times.append((time.perf_counter() - begun) * 1000)
        results[label] = statistics.median(times)
        print(f"{label:42} {results[label]:10.1f} {len(queries):8d}")
    base = results["history, page 1 (20 orders)"]
    print(
        f"\nhistory at 100,000 orders / at 20: page 1 {results['history, page 1 (100,000 orders)'] / base:.2f}x, "
        f"page 4,000 {results['history, page 4,000 (100,000 orders)'] / base:.2f}x (goal: within 2x)"
    )


if __name__ == "__main__":
    main()

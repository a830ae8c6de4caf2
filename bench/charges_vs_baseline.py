"""Charges: the merchant API under gunicorn against a bare-Django baseline, in one run.

    .venv/bin/python bench/charges_vs_baseline.py [--charges 2000] [--concurrency 16] [--workers 4]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; PGHOST/PGUSER/PGPORT to change).
It makes two scratch databases with the project's schema, an API client, 200 members with
money and one member code per sale, starts the project (production settings) and the
baseline (bench/charges_baseline_app.py: no apps, no middleware, the same SQL by hand)
under the same gunicorn flags, and sends both the same requests in alternating chunks:
POST /api/v1/charges by member code, each sale with its own Idempotency-Key, and 20% of
the requests a replay of an earlier sale (same key, same body). Then it checks that no
sale was debited twice and every balance equals its ledger, and prints throughput,
latency percentiles and server CPU per request with the ratios (project / baseline).

Then, on the project alone: 50 charges at once on one member (more than the balance
allows), every one answered, none below zero, and their p99.
It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import secrets
import sys
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from notify_vs_baseline import PG, Server, alternate, pct, prepare_database, report, send_chunk  # noqa: E402

API_KEY = "sk_bench" + "x" * 40
MEMBERS = 200


def seed_balance(conn, user: int, amount: int) -> None:
    """An operator's credit of `amount` fen: its ledger row, and the lot (bonus only) it opens."""
    entry = conn.execute(
        "INSERT INTO orders_ledgerentry (user_id, amount, kind, balance_after, reason, created_at)"
        " VALUES (%s, %s, 'adjustment', %s, 'bench', now()) RETURNING id",
        [user, amount, amount],
    ).fetchone()[0]
    lot = conn.execute(
        "INSERT INTO orders_lot (user_id, paid, bonus, paid_left, bonus_left, created_at)"
        " VALUES (%s, 0, %s, 0, %s, now()) RETURNING id",
        [user, amount, amount],
    ).fetchone()[0]
    conn.execute("INSERT INTO orders_lotmove (entry_id, lot_id, paid, bonus) VALUES (%s, %s, 0, %s)", [entry, lot, amount])


def prepare(name: str, sales: int) -> list[tuple[str, dict]]:
    """A fresh database with an API client, members and one code per sale; (key, body) per sale."""
    prepare_database(name)
    plan = []
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute(
            "INSERT INTO wallet_apiclient (name, scopes, store, key_prefix, key_digest, created_at)"
            " VALUES ('bench', %s, '', 'sk_bench', %s, now())",
            [json.dumps(["charges:write", "charges:read"]), hashlib.sha256(API_KEY.encode()).hexdigest()],
        )
        users = [
            conn.execute(
                "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,"
                " is_staff, is_active, date_joined, balance, mp_session_key) VALUES ('!', false, %s, '', '',"
                " '', false, true, now(), 10000000, '') RETURNING id",
                [f"member{u}"],
            ).fetchone()[0]
            for u in range(MEMBERS)
        ]
        for user in users:  # their balances come from the ledger, as everywhere
            seed_balance(conn, user, 10000000)
        for n in range(sales):
            code = "88" + f"{n:08d}" + secrets.token_hex(4)[:8].translate(str.maketrans("abcdef", "123456"))
            conn.execute(
                "INSERT INTO wallet_membercode (code, user_id, created_at, expires_at) VALUES (%s, %s, now(),"
                " now() + interval '1 hour')",
                [code, users[n % len(users)]],
            )
            plan.append((f"sale-{n}-{secrets.token_hex(4)}", {"member_code": code, "amount": random.choice([100, 1250, 990])}))
    return plan


def requests_for(plan: list[tuple[str, dict]], total: int) -> list[tuple[str, dict]]:
    """80% first sends, 20% replays of an earlier one (same key and body), shuffled."""
    firsts = plan[: round(total * 0.8)]
    sent = list(firsts) + random.choices(firsts, k=total - len(firsts))
    random.shuffle(sent)
    return sent


def send_charge(session: requests.Session, server: Server, sale: tuple[str, dict]) -> str:
    """POST one sale with its Idempotency-Key; the answer's HTTP status."""
    key, body = sale
    headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": key}
    return str(session.post(server.url, json=body, headers=headers, timeout=30).status_code)


def check_books(name: str) -> list[str]:
    with psycopg.connect(dbname=name, **PG) as conn:
        problems = []
        doubles = conn.execute(
            "SELECT count(*) FROM (SELECT member_code_id FROM wallet_charge GROUP BY member_code_id HAVING count(*) > 1) d"
        ).fetchone()[0]
        spends = conn.execute("SELECT count(*) FROM orders_ledgerentry WHERE kind = 'spend'").fetchone()[0]
        charges = conn.execute("SELECT count(*) FROM wallet_charge").fetchone()[0]
        used = conn.execute("SELECT count(*) FROM wallet_membercode WHERE used_at IS NOT NULL").fetchone()[0]
        off = conn.execute(
            "SELECT count(*) FROM accounts_user u WHERE balance <> (SELECT coalesce(sum(amount), 0)"
            " FROM orders_ledgerentry l WHERE l.user_id = u.id)"
        ).fetchone()[0]
        if doubles or spends != charges or used != charges:
            problems.append(
                f"double debits: {doubles} codes charged twice, {spends} spends, {charges} charges, {used} codes used"
            )
        if off:
            problems.append(f"{off} balances differ from their ledger")
        return problems


def one_member_at_once(server: Server, name: str, n: int = 50) -> tuple[dict[str, int], float, int]:
    """`n` charges at once on one member whose balance covers 30 of them: answers, p99, balance."""
    with psycopg.connect(dbname=name, **PG) as conn:
        user = conn.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,"
            " is_staff, is_active, date_joined, balance, mp_session_key) VALUES ('!', false, 'hot', '', '',"
            " '', false, true, now(), 3000, '') RETURNING id"
        ).fetchone()[0]
        seed_balance(conn, user, 3000)
        codes = []
        for i in range(n):
            code = f"88{i:016d}"
            conn.execute(
                "INSERT INTO wallet_membercode (code, user_id, created_at, expires_at) VALUES (%s, %s, now(),"
                " now() + interval '1 hour')",
                [code, user],
            )
            codes.append(code)
    server.latencies, server.answers, server.wall = [], {}, 0.0
    send_chunk(server, [(f"hot-{c}", {"member_code": c, "amount": 100}) for c in codes], n, send_charge)
    with psycopg.connect(dbname=name, **PG) as conn:
        balance = conn.execute("SELECT balance FROM accounts_user WHERE id = %s", [user]).fetchone()[0]
    return dict(server.answers), pct(server.latencies, 99), balance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    random.seed(20261207)
    names = {"project": "wxr_bench_charges_project", "baseline": "wxr_bench_charges_baseline"}
    plans = {}
    for label, name in names.items():
        random.seed(20261207)
        plans[label] = requests_for(prepare(name, args.charges), args.charges)
    path = "/api/v1/charges"
    # The rate limit is counted on both sides (the same statements); set high enough to answer every sale.
    env = {"MERCHANT_API_REQUESTS_PER_MINUTE": "1000000"}
    baseline_app = "bench.charges_baseline_app"
    servers = {
        "project": Server(names["project"], "wxrecharge.wsgi:application", "wxrecharge.settings", args.workers, path, env),
        "baseline": Server(names["baseline"], f"{baseline_app}:application", baseline_app, args.workers, path, env),
    }
    try:
        for server in servers.values():  # warm up: workers import, connect, compile
            for _ in range(args.workers * 2):
                requests.post(server.url, json={}, headers={"Authorization": "Bearer sk_warmup"}, timeout=30)
        cpu = alternate(servers, plans, args.chunk, args.concurrency, send_charge)
        print(
            f"{args.charges} charges each (20% replays of an Idempotency-Key), {args.concurrency} concurrent, "
            f"gunicorn --workers {args.workers} sync, PostgreSQL\n"
        )
        books = {label: check_books(names[label]) for label in servers}
        invalid = report(servers, cpu, books, {"201", "409"}, "no double debit, balances = ledger", "goal: throughput >= 0.7")
        answers, p99, balance = one_member_at_once(servers["project"], names["project"])
        print(
            f"\n50 charges of ¥1.00 at once on one member holding ¥30.00 (project): answers {answers}, "
            f"p99 {p99:.1f} ms, balance after {balance} fen"
        )
    finally:
        for server in servers.values():
            server.stop()
    if invalid:
        sys.exit(f"\nnot a valid comparison: {', '.join(invalid)} answered other than 201/409 or its books are wrong")


if __name__ == "__main__":
    main()

"""How many payment notifies per second one process applies (record, verify, apply, answer).

    .venv/bin/python bench/notify_throughput.py [N]            # SQLite in a temp file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/notify_throughput.py

It migrates a scratch database, creates N orders, posts one verified notify for each and
then a repeat of each through Django's test client, and prints the rates.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from tests.factories import make_order, make_user  # noqa: E402
from tests.helpers import notify_xml  # noqa: E402


def main(n: int) -> None:
    call_command("migrate", verbosity=0)
    user = make_user(f"bench{time.time_ns()}", openid=f"oBench{time.time_ns()}")
    orders = [make_order(user, amount=100) for _ in range(n)]
    bodies = [notify_xml(o.out_trade_no, 100, transaction_id=f"4200{time.time_ns()}{i:06d}"[:32]) for i, o in enumerate(orders)]
    client = Client()
    for label in ("first delivery", "repeat"):
        started = time.perf_counter()
        for body in bodies:
            response = client.post("/payments/wechat/notify/", body, content_type="text/xml")
            assert b"SUCCESS" in response.content, response.content
        elapsed = time.perf_counter() - started
        print(f"{label:15} {n} notifies in {elapsed:.2f}s: {n / elapsed:.0f}/s, {elapsed / n * 1000:.2f} ms each")
    user.refresh_from_db()
    assert user.balance == 100 * n, user.balance


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)

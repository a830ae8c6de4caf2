"""A day's bill at scale: `reconcile_bill` against a bare COPY-and-join baseline, in one run.

    .venv/bin/python bench/bill_scale.py [--trades 10000,100000,1000000]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; PGHOST/PGUSER/PGPORT to change).
For each size it makes a scratch database with the project's schema and a day of N trades:
orders paid that day (one in fifty refunded), and WeChat's v2 trade bill of that day as a file,
with eight differences planted (a payment whose notify was lost, an order WeChat does not
know, a payment WeChat lacks, another amount, another transaction id, a repeated line, a
refund of another amount, a refund WeChat lacks). Then, each in its own process:

- the project: `manage.py reconcile_bill --date DAY` (production settings, API v2), which
  downloads the bill from a local server playing WeChat's pay/downloadbill;
- the baseline (bench/bill_baseline.py): psycopg COPY of the same file into a temporary table
  and one join each way finding the same differences, nothing else.

It prints wall time and peak memory (the process's maximum resident set) of both, with the
ratios, and checks that both found exactly the eight planted differences. It reports; it
asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import http.server
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wxproto.amounts import format_fee, format_fen  # noqa: E402

APPID, MCH_ID, API_KEY = "wx0123456789abcdef", "1230000109", "benchkey0123456789abcdefghijklmn"
DAY = date(2026, 11, 23)
BEIJING = ZoneInfo("Asia/Shanghai")
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "postgres"),
}
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
REFUND_EVERY = 50  # one order in fifty is refunded (100 fen), the same day
USERS = 1000


def out_trade_no(g: int) -> str:
    return f"B{g:020d}"


def txn(g: int) -> str:
    return f"42{g:030d}"


def amount(g: int) -> int:
    return 100 + (g % 50) * 100


def second(g: int) -> int:
    return g % 86000  # paid at this second of the day; a refund a minute later


def refunded(r: int) -> int:
    """The order that refund r refunds."""
    return r * REFUND_EVERY + 10


def db_url(name: str) -> str:
    return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def env_for(name: str, pay_base_url: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "SANDBOX_", "DATABASE_"))}
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SITE_URL="http://127.0.0.1:9",
        WECHAT_SANDBOX="0",
        WECHAT_PAY_API="v2",
        WECHAT_APPID=APPID,
        WECHAT_APP_SECRET="s" * 32,
        WECHAT_MCH_ID=MCH_ID,
        WECHAT_API_KEY=API_KEY,
        WECHAT_PAY_BASE_URL=pay_base_url,
        DATABASE_URL=db_url(name),
        PYTHONPATH=str(ROOT),
    )
    return env


# -- the day --------------------------------------------------------------------------------


def prepare(name: str, trades: int) -> tuple[int, int]:
    """A fresh database with the project's schema and the day's orders and refunds; returns
    (orders, refunds)."""
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = env_for(name)
    env["DJANGO_DEBUG"] = "1"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    orders = trades * REFUND_EVERY // (REFUND_EVERY + 1)
    refunds = (orders - 10) // REFUND_EVERY  # refund r refunds order r * 50 + 10
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=BEIJING)
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined, balance, mp_session_key)"
            " SELECT '!', false, 'bench' || g, '', '', '', false, true, %s, 0, '' FROM generate_series(1, %s) g",
            [start - timedelta(days=30), USERS],
        )
        first_user = conn.execute("SELECT min(id) FROM accounts_user").fetchone()[0]
        # Orders 1..orders paid that day (order 1's notify was lost: pending here).
        conn.execute(
            "INSERT INTO orders_rechargeorder (out_trade_no, user_id, amount, status, channel, openid, prepay_id,"
            " trade_type, pay_url, close_reason, prepay_error, expires_at, transaction_id, paid_at, refunded_amount,"
            " bonus, created_at, updated_at)"
            " SELECT 'B' || lpad(g::text, 20, '0'), %(user)s + g %% %(users)s, 100 + (g %% 50) * 100,"
            "  CASE WHEN g = 1 THEN 0 ELSE 1 END, 'jsapi', 'oBench', 'wx_prepay', 'JSAPI', '', '', '',"
            "  %(start)s + make_interval(secs => g %% 86000 + 1800),"
            "  CASE WHEN g = 1 THEN NULL ELSE '42' || lpad(g::text, 30, '0') END,"
            "  CASE WHEN g = 1 THEN NULL ELSE %(start)s + make_interval(secs => g %% 86000) END,"
            "  0, 0, %(start)s + make_interval(secs => g %% 86000) - interval '1 minute',"
            "  %(start)s + make_interval(secs => g %% 86000)"
            " FROM generate_series(1, %(orders)s) g",
            {"user": first_user, "users": USERS, "start": start, "orders": orders},
        )
        conn.execute(
            "INSERT INTO orders_refund (order_id, out_refund_no, amount, status, reason, refund_id, accepted, accepted_at,"
            " last_error, manual, payout, settled_at, created_at, updated_at)"
            " SELECT o.id, 'R' || lpad(r::text, 20, '0'), 100, 1, 'bench', '50' || lpad(r::text, 30, '0'), true,"
            "  o.paid_at + interval '1 minute', '', false, '', o.paid_at + interval '2 minutes',"
            "  o.paid_at + interval '1 minute', o.paid_at + interval '2 minutes'"
            " FROM generate_series(1, %(refunds)s) r"
            " JOIN orders_rechargeorder o ON o.out_trade_no = 'B' || lpad((r * %(every)s + 10)::text, 20, '0')",
            {"refunds": refunds, "every": REFUND_EVERY},
        )
        conn.execute("UPDATE orders_rechargeorder o SET refunded_amount = r.amount FROM orders_refund r WHERE r.order_id = o.id")
        conn.execute("ANALYZE")
    return orders, refunds


def write_bill(path: Path, orders: int, refunds: int) -> dict[str, str]:
    """WeChat's bill of the day with the eight differences planted; returns {kind: out_trade_no}."""
    unknown = orders + 1
    planted = {
        "missed_payment": out_trade_no(1),
        "missing_payment": out_trade_no(2),
        "amount": out_trade_no(3),
        "transaction": out_trade_no(4),
        "duplicate": out_trade_no(5),
        "unknown_order": out_trade_no(unknown),
        "refund_amount": out_trade_no(refunded(1)),
        "missing_refund": out_trade_no(refunded(2)),
    }
    count = paid = refunded_total = fee = 0
    start = datetime.combine(DAY, datetime.min.time())

    def at(seconds: int) -> str:
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")

    def payment(g: int, fen: int, transaction_id: str) -> str:
        nonlocal count, paid, fee
        count, paid, fee = count + 1, paid + fen, fee + fen * 6
        yuan = format_fen(fen)
        return (
            f"`{at(second(g))},`{APPID},`{MCH_ID},`0,`,`{transaction_id},`{out_trade_no(g)},`oBench,`JSAPI,`SUCCESS,`CMC,"
            f"`CNY,`{yuan},`0.00,`0,`0,`0.00,`0.00,`,`,`余额充值,`,`{format_fee(fen * 6)},`0.60%,`{yuan},`0.00,`\r\n"
        )

    def refund(r: int, fen: int) -> str:
        nonlocal count, refunded_total, fee
        g = refunded(r)
        count, refunded_total, fee = count + 1, refunded_total + fen, fee - fen * 6
        yuan = format_fen(fen)
        return (
            f"`{at(second(g) + 60)},`{APPID},`{MCH_ID},`0,`,`{txn(g)},`{out_trade_no(g)},`oBench,`JSAPI,`REFUND,`CMC,"
            f"`CNY,`0.00,`0.00,`50{r:030d},`R{r:020d},`{yuan},`0.00,`ORIGINAL,`SUCCESS,`余额充值,`,"
            f"`{format_fee(-fen * 6)},`0.60%,`0.00,`{yuan},`\r\n"
        )

    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\r\n")
        for g in range(1, orders + 1):
            if g == 2:
                continue  # WeChat lacks it
            fen = amount(g) + (1 if g == 3 else 0)
            out.write(payment(g, fen, txn(g) if g != 4 else f"43{g:030d}"))
            if g == 5:
                out.write(payment(g, amount(g), txn(g)))
        out.write(payment(unknown, 1000, txn(unknown)))
        for r in range(1, refunds + 1):
            if r != 2:
                out.write(refund(r, 150 if r == 1 else 100))
        out.write(SUMMARY_HEADER + "\r\n")
        out.write(
            f"`{count},`{format_fen(paid)},`{format_fen(refunded_total)},`0.00,`{format_fee(fee)},`{format_fen(paid)},"
            f"`{format_fen(refunded_total)}\r\n"
        )
    return planted


# -- WeChat's pay/downloadbill ----------------------------------------------------------------


def serve(path: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain;charset=utf-8")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            with open(path, "rb") as bill:
                while chunk := bill.read(1 << 20):
                    self.wfile.write(chunk)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


# -- the runs ----------------------------------------------------------------------------------


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run `command`; (wall seconds, peak resident MB, its output)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, output


def found_by_project(name: str) -> dict[str, str]:
    with psycopg.connect(dbname=name, **PG) as conn:
        rows = conn.execute(
            "SELECT d.kind, d.out_trade_no FROM reconciliation_difference d"
            " JOIN reconciliation_billday b ON b.id = d.bill_day_id WHERE b.date = %s",
            [DAY],
        ).fetchall()
    return {kind: number for kind, number in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", default="10000,100000,1000000", help="comma-separated day sizes")
    args = parser.parse_args()
    sizes = [int(n) for n in args.trades.split(",")]
    print(f"{'trades':>9} | {'project s':>9} {'MB':>6} | {'baseline s':>10} {'MB':>6} | {'time ×':>6} | found")
    for trades in sizes:
        name = "wxr_bench_bill"
        orders, refunds = prepare(name, trades)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bill.csv"
            planted = write_bill(path, orders, refunds)
            base_s, base_mb, base_out = timed(
                [sys.executable, "bench/bill_baseline.py", db_url(name), str(path), DAY.isoformat()], env_for(name)
            )
            server, url = serve(path)
            try:
                command = [sys.executable, "manage.py", "reconcile_bill", "--date", DAY.isoformat()]
                proj_s, proj_mb, proj_out = timed(command, env_for(name, url))
            finally:
                server.shutdown()
        by_baseline = dict(line.split(" ", 1) for line in base_out.split("\n") if line.startswith(tuple(planted)))
        by_project = found_by_project(name)
        verdict = []
        for who, found in (("project", by_project), ("baseline", by_baseline)):
            verdict.append(f"{who} {'all 8, nothing else' if found == planted else f'WRONG: {found}'}")
        if by_project != planted:
            print(proj_out[-2000:])
        print(
            f"{trades:>9} | {proj_s:>9.2f} {proj_mb:>6.0f} | {base_s:>10.2f} {base_mb:>6.0f} | "
            f"{proj_s / base_s:>6.2f} | {'; '.join(verdict)}",
            flush=True,
        )
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute('DROP DATABASE IF EXISTS "wxr_bench_bill"')


if __name__ == "__main__":
    main()

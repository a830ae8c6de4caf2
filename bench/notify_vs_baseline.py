"""Payment notifies: the project under gunicorn against a bare-Django baseline, in one run.

    .venv/bin/python bench/notify_vs_baseline.py [--api v2|v3|both] [--notifies 1000] [--concurrency 16] [--workers 4]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth; PGHOST/PGUSER/PGPORT to change).
For each API version (both unless --api says one) it makes two scratch databases with the
project's schema, 1,000 pending orders in each (70% get a notify, 30% of the notifies are
repeats, shuffled so that some race their first delivery), starts the project (production
settings, sandbox off, WECHAT_PAY_API set to that version) and the baseline
(bench/baseline_app.py: no apps, no middleware, the same SQL by hand; v2: the same XML
verified, v3: the same signature verified and AES-GCM resource decrypted, with keys this
script makes) under the same gunicorn flags, and sends the same notifies to both in
alternating chunks so that the machine's ups and downs fall on both (v3 notifies are signed
just before their chunk is sent, so that none is older than WeChat's 5 minutes). Then it
checks that every order was credited exactly once and every balance equals its ledger, and
prints throughput, latency percentiles and server CPU per request for both, with the
ratios (project / baseline). It reports; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wxproto import v2 as wxpay  # noqa: E402

APPID, MCH_ID, API_KEY = "wx0123456789abcdef", "1230000109", "benchkey0123456789abcdefghijklmn"
APIV3_KEY, PUB_KEY_ID = "benchv3key0123456789abcdefghijkl", "PUB_KEY_ID_0112345678901234567890123456789012"
NOTIFY_PATHS = {"v2": "/payments/wechat/notify/", "v3": "/payments/wechat/v3/notify/"}
GOALS = {"v2": "goals: throughput >= 0.9, p99 <= 1.2", "v3": "goals: throughput >= 0.85, p99 <= 1.2"}
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "postgres"),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def db_url(name: str) -> str:
    return f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(name: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "SANDBOX_", "DATABASE_"))}
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        SITE_URL=f"http://127.0.0.1:{port}",
        WECHAT_SANDBOX="0",
        WECHAT_PAY_API="v2",
        WECHAT_APPID=APPID,
        WECHAT_APP_SECRET="s" * 32,
        WECHAT_MCH_ID=MCH_ID,
        WECHAT_API_KEY=API_KEY,
        DATABASE_URL=db_url(name),
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare_database(name: str) -> None:
    """A fresh database `name` with the project's schema."""
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    env = server_env(name, 0)
    env["DJANGO_DEBUG"] = "1"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def prepare(name: str, orders: int) -> list[tuple[str, int]]:
    """A fresh database with the project's schema and `orders` pending orders; returns (out_trade_no, amount)."""
    prepare_database(name)
    made = []
    with psycopg.connect(dbname=name, **PG) as conn:
        users = [
            conn.execute(
                "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email,"
                " is_staff, is_active, date_joined, balance, mp_session_key) VALUES ('!', false, %s, '', '',"
                " '', false, true, now(), 0, '') RETURNING id",
                [f"bench{u}"],
            ).fetchone()[0]
            for u in range(50)
        ]
        for n in range(orders):
            out_trade_no = f"BENCH{n:08d}{secrets.token_hex(4)}"
            amount = random.choice([100, 990, 1000, 3000, 5000])
            conn.execute(
                "INSERT INTO orders_rechargeorder (out_trade_no, user_id, amount, status, channel, openid,"
                " prepay_id, trade_type, pay_url, close_reason, prepay_error, expires_at, refunded_amount, bonus,"
                " created_at, updated_at)"
                " VALUES (%s, %s, %s, 0, 'jsapi', 'oBench', '', 'JSAPI', '', '', '', now() + interval '1 hour', 0, 0,"
                " now(), now())",
                [out_trade_no, users[n % len(users)], amount],
            )
            made.append((out_trade_no, amount))
    return made


def notifies(orders: list[tuple[str, int]], count: int, api: str = "v2") -> list[bytes]:
    """`count` notifies (v2: signed; v3: to sign when sent): 70% first deliveries, 30% repeats, shuffled."""
    firsts = orders[: round(count * 0.7)]
    bodies = {}
    for n, (out_trade_no, amount) in enumerate(firsts):
        if api == "v3":
            bodies[out_trade_no] = v3_body(out_trade_no, amount, f"4200{n:012d}{secrets.token_hex(6)}")
            continue
        fields = {
            "return_code": "SUCCESS",
            "return_msg": "OK",
            "appid": APPID,
            "mch_id": MCH_ID,
            "nonce_str": wxpay.nonce(),
            "result_code": "SUCCESS",
            "openid": "oBench",
            "is_subscribe": "N",
            "trade_type": "JSAPI",
            "bank_type": "CMC",
            "total_fee": str(amount),
            "fee_type": "CNY",
            "cash_fee": str(amount),
            "transaction_id": f"4200{n:012d}{secrets.token_hex(6)}",
            "out_trade_no": out_trade_no,
            "time_end": "20261123120000",
        }
        fields["sign"] = wxpay.sign(fields, API_KEY)
        bodies[out_trade_no] = wxpay.to_xml(fields).encode()
    sent = list(bodies.values())
    sent += random.choices(sent, k=count - len(sent))
    random.shuffle(sent)
    return sent


def v3_keys(directory: Path) -> tuple[dict[str, str], rsa.RSAPrivateKey]:
    """The merchant's v3 settings (its API key, WeChat's public key, written in `directory`),
    and WeChat's private key, which signs the notifies."""
    merchant, wechat = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    (directory / "apiclient_key.pem").write_bytes(
        merchant.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (directory / "pub_key.pem").write_bytes(
        wechat.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    env = {
        "WECHAT_PAY_API": "v3",
        "WECHAT_MCH_PRIVATE_KEY": str(directory / "apiclient_key.pem"),
        "WECHAT_MCH_CERT_SERIAL": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "WECHAT_APIV3_KEY": APIV3_KEY,
        "WECHAT_PAY_PUBLIC_KEY": str(directory / "pub_key.pem"),
        "WECHAT_PAY_PUBLIC_KEY_ID": PUB_KEY_ID,
    }
    return env, wechat


def v3_body(out_trade_no: str, amount: int, transaction_id: str) -> bytes:
    """A TRANSACTION.SUCCESS notify as WeChat sends it: its resource encrypted under the APIv3 key."""
    resource = {
        "appid": APPID,
        "mchid": MCH_ID,
        "out_trade_no": out_trade_no,
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-23T12:00:00+08:00",
        "payer": {"openid": "oBench"},
        "amount": {"total": amount, "payer_total": amount, "currency": "CNY", "payer_currency": "CNY"},
    }
    nonce = secrets.token_hex(6)
    plain = json.dumps(resource, ensure_ascii=False).encode()
    ciphertext = AESGCM(APIV3_KEY.encode()).encrypt(nonce.encode(), plain, b"transaction")
    envelope = {
        "id": "EV-" + secrets.token_hex(8),
        "create_time": "2026-11-23T12:00:01+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": "transaction",
            "nonce": nonce,
        },
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def v3_signer(key: rsa.RSAPrivateKey) -> Callable[[list[bytes]], list[tuple[bytes, dict[str, str]]]]:
    """Sign bodies as WeChat does, now: each with the headers it is sent with."""

    def sign(bodies: list[bytes]) -> list[tuple[bytes, dict[str, str]]]:
        signed = []
        for body in bodies:
            timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
            message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
            signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
            headers = {
                "Content-Type": "application/json",
                "Wechatpay-Timestamp": timestamp,
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": signature,
                "Wechatpay-Serial": PUB_KEY_ID,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                "Request-ID": "08F0-" + secrets.token_hex(8),
            }
            signed.append((body, headers))
        return signed

    return sign


class Server:
    def __init__(
        self,
        name: str,
        app: str,
        settings_module: str,
        workers: int,
        path: str = "/payments/wechat/notify/",
        extra_env: dict[str, str] | None = None,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        env = {**server_env(name, self.port), **(extra_env or {})}
        env["DJANGO_SETTINGS_MODULE"] = settings_module
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--timeout",
                "30",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        self.latencies: list[float] = []
        self.wall = 0.0
        self.answers: dict[str, int] = {}

    def cpu_seconds(self) -> float:
        """User + system CPU of the gunicorn master and its workers."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def send_notify(session: requests.Session, server: Server, body: bytes) -> str:
    """Post one notify; what WeChat would read in the answer (its return_code)."""
    answer = session.post(server.url, data=body, headers={"Content-Type": "text/xml"}, timeout=30)
    return wxpay.parse_xml(answer.content).get("return_code", "?") if answer.ok else f"HTTP {answer.status_code}"


def send_v3_notify(session: requests.Session, server: Server, signed: tuple[bytes, dict[str, str]]) -> str:
    """Post one v3 notify with its signature headers; SUCCESS when answered 204, as WeChat reads it."""
    body, headers = signed
    answer = session.post(server.url, data=body, headers=headers, timeout=30)
    return "SUCCESS" if answer.status_code == 204 else f"HTTP {answer.status_code}"


def send_chunk(server: Server, items: list, concurrency: int, send: Callable = send_notify) -> None:
    """`send(session, server, item)` each item, `concurrency` at a time, timing each and
    counting what came back."""
    queue = list(items)
    lock = threading.Lock()

    def work():
        session = requests.Session()
        while True:
            with lock:
                if not queue:
                    return
                item = queue.pop()
            started = time.perf_counter()
            try:
                code = send(session, server, item)
            except (requests.RequestException, wxpay.XMLError) as exc:
                code = exc.__class__.__name__
            elapsed = time.perf_counter() - started
            with lock:
                server.latencies.append(elapsed)
                server.answers[code] = server.answers.get(code, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.wall += time.perf_counter() - started


def alternate(
    servers: dict[str, Server],
    plans: dict[str, list],
    chunk: int,
    concurrency: int,
    send: Callable = send_notify,
    ready: Callable[[list], list] | None = None,
) -> dict:
    """Send each side its plan in alternating chunks (the machine's ups and downs fall on both),
    each chunk made `ready` first, untimed (v3: signed); the server CPU seconds each side used."""
    cpu = dict.fromkeys(servers, 0.0)
    total = len(plans["project"])
    for start in range(0, total, chunk):
        for label in ("project", "baseline") if start // chunk % 2 == 0 else ("baseline", "project"):
            items = plans[label][start : start + chunk]
            items = ready(items) if ready else items
            before = servers[label].cpu_seconds()
            send_chunk(servers[label], items, concurrency, send)
            cpu[label] += servers[label].cpu_seconds() - before
    return cpu


def report(
    servers: dict[str, Server], cpu: dict, books: dict[str, list[str]], answers: set[str], good: str, goal: str
) -> list[str]:
    """Print each side's figures and the ratios; the sides whose answers were not all in
    `answers` or whose books are wrong (their figures compare nothing)."""
    rows, invalid = {}, []
    print(f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}  answers, books")
    for label, server in servers.items():
        n = len(server.latencies)
        rows[label] = (
            n / server.wall,
            pct(server.latencies, 50),
            pct(server.latencies, 95),
            pct(server.latencies, 99),
            cpu[label] / n * 1000,
        )
        if books[label] or set(server.answers) - answers:
            invalid.append(label)
        print(
            f"{label:10} {rows[label][0]:8.0f} {rows[label][1]:8.1f} {rows[label][2]:8.1f} {rows[label][3]:8.1f} "
            f"{rows[label][4]:11.2f}  {server.answers}, {'; '.join(books[label]) or good}"
        )
    p, b = rows["project"], rows["baseline"]
    print(
        f"{'ratio':10} {p[0] / b[0]:8.2f} {p[1] / b[1]:8.2f} {p[2] / b[2]:8.2f} {p[3] / b[3]:8.2f} {p[4] / b[4]:11.2f}"
        f"  (project / baseline; {goal})"
    )
    return invalid


def check_books(name: str, credited: int) -> list[str]:
    with psycopg.connect(dbname=name, **PG) as conn:
        problems = []
        doubles = conn.execute(
            "SELECT count(*) FROM (SELECT order_id FROM orders_ledgerentry WHERE kind = 'recharge'"
            " GROUP BY order_id HAVING count(*) > 1) d"
        ).fetchone()[0]
        paid = conn.execute("SELECT count(*) FROM orders_rechargeorder WHERE status = 1").fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM orders_ledgerentry WHERE kind = 'recharge'").fetchone()[0]
        off = conn.execute(
            "SELECT count(*) FROM accounts_user u WHERE balance <> (SELECT coalesce(sum(amount), 0)"
            " FROM orders_ledgerentry l WHERE l.user_id = u.id)"
        ).fetchone()[0]
        if doubles:
            problems.append(f"{doubles} orders credited twice")
        if paid != credited or rows != credited:
            problems.append(f"{paid} orders paid and {rows} ledger rows, expected {credited}")
        if off:
            problems.append(f"{off} balances differ from their ledger")
        return problems


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000 if len(values) > 1 else 0.0


def compare(api: str, args: argparse.Namespace, keys: Path) -> list[str]:
    """One pair, project and baseline, on notifies of one API version: the figures printed; the
    sides that make it no valid comparison."""
    random.seed(20261123)
    names = {"project": f"wxr_bench_{api}_project", "baseline": f"wxr_bench_{api}_baseline"}
    plans = {label: notifies(prepare(name, args.notifies), args.notifies, api) for label, name in names.items()}
    env, wechat_key = v3_keys(keys) if api == "v3" else ({}, None)
    path = NOTIFY_PATHS[api]
    servers = {
        "project": Server(names["project"], "wxrecharge.wsgi:application", "wxrecharge.settings", args.workers, path, env),
        "baseline": Server(names["baseline"], "bench.baseline_app:application", "bench.baseline_app", args.workers, path, env),
    }
    send, ready = (send_v3_notify, v3_signer(wechat_key)) if wechat_key else (send_notify, None)
    try:
        for server in servers.values():  # warm up: workers import, connect, compile
            send_chunk(server, [b"<xml></xml>"] * (args.workers * 2), args.workers)
            server.latencies.clear()
            server.answers.clear()
            server.wall = 0.0
        cpu = alternate(servers, plans, args.chunk, args.concurrency, send, ready)
    finally:
        for server in servers.values():
            server.stop()

    credited = round(args.notifies * 0.7)
    print(
        f"API {api}: {args.notifies} notifies each (30% repeats), {args.concurrency} concurrent, gunicorn --workers "
        f"{args.workers} sync, PostgreSQL, persistent connections on both\n"
    )
    books = {label: check_books(names[label], credited) for label in servers}
    invalid = report(servers, cpu, books, {"SUCCESS"}, "every order credited once", GOALS[api])
    print()
    return [f"{api} {label}" for label in invalid]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", choices=["v2", "v3", "both"], default="both")
    parser.add_argument("--notifies", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()
    invalid = []
    with tempfile.TemporaryDirectory() as keys:
        for api in ("v2", "v3") if args.api == "both" else (args.api,):
            invalid += compare(api, args, Path(keys))
    if invalid:
        # A side that answered anything but SUCCESS or whose books are wrong did other work
        # than the other: its figures, and so the ratios, mean nothing.
        sys.exit(
            f"not a valid comparison: {', '.join(invalid)} did not answer SUCCESS to every notify "
            "or its books are wrong (see above)"
        )


if __name__ == "__main__":
    main()

from __future__ import annotations

import functools
import gc
import socket
import threading

import pytest
from django.conf import settings
from django.core.management.color import no_style
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test import TransactionTestCase
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler
from wechatpy.oauth import WeChatOAuth
from wechatpy.pay import WeChatPay

from devtools.wechat_sandbox import worker
from tests.factories import make_user
from tests.helpers import Receiver

# -- a cheaper flush after each transactional test (live server, races) -------------------------

# What migrate made and no test changes: Django's flush empties these too, then its
# post_migrate signal writes every content type and permission back, which was a fifth of
# the suite's time. Every other table is emptied as before.
KEPT_TABLES = {"django_migrations", "django_content_type", "auth_permission"}


def _flush_keeping_migrated_rows(self):
    for db_name in self._databases_names(include_mirrors=False):
        connection = connections[db_name]
        tables = [
            t
            for t in connection.introspection.django_table_names(only_existing=True, include_views=False)
            if t not in KEPT_TABLES
        ]
        if connection.vendor == "postgresql":
            # DELETE, not Django's TRUNCATE: a TRUNCATE of forty tables, each a few rows, makes
            # forty new files and took PostgreSQL ~100 ms a test. Foreign keys are deferred to
            # the commit, by which time every table is empty.
            statements = [f"DELETE FROM {connection.ops.quote_name(table)}" for table in tables]
            # The audit log's trigger lets a session that says so empty it (audit/guard.py).
            statements.insert(0, "SELECT set_config('wxrecharge.audit_purge', 'on', false)")
            statements.append("SELECT set_config('wxrecharge.audit_purge', 'off', false)")
        else:
            statements = connection.ops.sql_flush(no_style(), tables)
        connection.ops.execute_sql_flush(statements)


TransactionTestCase._fixture_teardown = _flush_keeping_migrated_rows


# -- a live server that answers at once and finishes its requests before the test ends ---------


class _CountedRequestHandler(QuietWSGIRequestHandler):
    """Django's live-server handler, counting the requests it is serving (see _LiveServer)."""

    def parse_request(self):
        self.counted = True
        self.server.began()
        return super().parse_request()

    def handle_one_request(self):
        self.counted = False
        try:
            super().handle_one_request()
        finally:
            if self.counted:
                self.server.ended()


class _LiveServer(ThreadedWSGIServer):
    """Django's live server, sending each answer as soon as it is written, and knowing when
    it has finished every request it began.

    The server writes an answer's headers and its body in two sends. On a connection kept
    alive (requests.Session: wechatpy, our v3 client, the sandbox's notify delivery; the
    browser), Nagle's algorithm held the body until the client acknowledged the headers,
    and the client delays that acknowledgement by up to 40 ms: every call over a kept
    connection took ~48 ms instead of ~5 ms. gunicorn in production closes each connection
    after its answer (sync workers), so this was the test server's alone.

    Once the client has the whole answer, the server still closes the request (Django's
    request_finished: the thread's database connection). `wait_idle` lets a test's teardown
    wait for that before the database is flushed and closed to the test's threads.
    """

    def __init__(self, address, handler, *args, **kwargs):
        super().__init__(address, _CountedRequestHandler, *args, **kwargs)
        self.in_flight = 0
        self.idle = threading.Condition()

    def get_request(self):
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    def began(self) -> None:
        with self.idle:
            self.in_flight += 1
            self.idle.notify_all()

    def ended(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout)


LiveServerThread.server_class = _LiveServer


@pytest.fixture(autouse=True)
def _live_server_finishes_its_requests(request):
    """After a live-server test, wait (up to 10 s) until the server has closed every request
    it began, before the test's database is flushed and closed to other threads (as
    pytest-django's own helper does, this asks for transactional_db first, so that this
    teardown comes before that one)."""
    if "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")
    server = request.getfixturevalue("live_server")
    yield
    server.thread.httpd.wait_idle(timeout=10)


@pytest.fixture
def user(db):
    return make_user("alice")


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def sandbox_url(live_server, settings):
    settings.SITE_URL = live_server.url
    return live_server.url + "/sandbox/"


@pytest.fixture
def wxpay(sandbox_url):
    """wechatpy's WeChatPay with our merchant account, pointed at the sandbox."""
    client = WeChatPay(settings.WECHAT_APPID, settings.WECHAT_API_KEY, settings.WECHAT_MCH_ID, timeout=10)
    client.API_BASE_URL = sandbox_url
    return client


@pytest.fixture
def wxoauth(sandbox_url):
    client = WeChatOAuth(settings.WECHAT_APPID, settings.WECHAT_APP_SECRET, redirect_uri=settings.SITE_URL + "/cb/")
    client.API_BASE_URL = sandbox_url
    client.OAUTH_BASE_URL = sandbox_url + "connect/"
    return client


@pytest.fixture
def receiver():
    made = []

    def make(answers=None) -> Receiver:
        made.append(Receiver(answers))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def delivery_worker():
    """The in-process delivery thread, as `make run` starts it; stopped after the test."""
    stop = threading.Event()
    started = []

    def start():
        started.append(worker.start(stop))
        return started[-1]

    yield start
    stop.set()
    worker.wake()
    for thread in started:
        thread.join(timeout=10)
    worker._thread = None


# -- money invariants, checked after every test that touched the database --------------------

DB_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences", "admin_client", "admin_user"}


def money_invariant_violations() -> list[str]:
    """Each balance equals the sum of its ledger rows and of what its lots have left; each lot's
    paid and bonus left are the sums of its moves, each ledger row is the sum of its moves, and
    a refund or bonus row moves its own order's lot, paid or bonus only; refunds never exceed
    what was paid; a charge's reversals never exceed it, and each charge is its own ledger row."""
    from django.db import connection

    problems = []
    with connection.cursor() as cursor:
        for message, sql, params in _invariant_queries():
            cursor.execute(sql, params)
            problems += [message.format(*row) for row in cursor.fetchall()]
    return problems


@functools.cache
def _invariant_queries() -> list[tuple[str, str, tuple]]:
    """The checks as SQL, compiled by the ORM once per process: run after each of about
    a thousand tests, building them anew cost several seconds of the suite."""
    from django.db.models import F, Q, Sum
    from django.db.models.functions import Coalesce

    from accounts.models import User
    from orders.models import RechargeOrder, Refund

    refunded = Coalesce(Sum("refunds__amount", filter=Q(refunds__status=Refund.Status.SUCCESS)), 0)
    committed = Coalesce(Sum("refunds__amount", filter=~Q(refunds__status__in=[Refund.Status.CLOSED, Refund.Status.FAILED])), 0)
    checks = [
        (
            "user {}: balance {} != ledger {}",
            User.objects.annotate(ledger=Coalesce(Sum("ledger_entries__amount"), 0))
            .exclude(balance=F("ledger"))
            .values_list("username", "balance", "ledger"),
        ),
        (
            "order {}: refunded {}, successful refunds {}, amount {}",
            RechargeOrder.objects.annotate(done=refunded)
            .filter(Q(refunded_amount__gt=F("amount")) | ~Q(refunded_amount=F("done")))
            .values_list("out_trade_no", "refunded_amount", "done", "amount"),
        ),
        (
            "order {}: refunds {} exceed amount {}",
            RechargeOrder.objects.annotate(committed=committed)
            .filter(committed__gt=F("amount"))
            .values_list("out_trade_no", "committed", "amount"),
        ),
    ]
    from wallet.models import Charge

    reversed_sum = Coalesce(Sum("reversals__amount"), 0)
    checks += [
        (
            "charge {}: reversed {}, reversals {}, amount {}",
            Charge.objects.annotate(done=reversed_sum)
            .filter(Q(reversed_amount__gt=F("amount")) | ~Q(reversed_amount=F("done")))
            .values_list("number", "reversed_amount", "done", "amount"),
        ),
        (
            "charge {}: amount {}, its ledger row {} ({})",
            Charge.objects.exclude(entry__amount=-F("amount"), entry__kind="spend", entry__user=F("user")).values_list(
                "number", "amount", "entry__amount", "entry__kind"
            ),
        ),
    ]
    from orders.models import LedgerEntry, Lot, LotMove

    kinds = LedgerEntry.Kind
    own_lot = [kinds.REFUND, kinds.REFUND_RETURN, kinds.BONUS, kinds.BONUS_REMOVAL, kinds.BONUS_RETURN, kinds.RECHARGE]
    checks += [
        (
            "lot {}: left {} + {}, its moves {} + {}",
            Lot.objects.annotate(paid_moved=Coalesce(Sum("moves__paid"), 0), bonus_moved=Coalesce(Sum("moves__bonus"), 0))
            .exclude(paid_left=F("paid_moved"), bonus_left=F("bonus_moved"))
            .values_list("pk", "paid_left", "bonus_left", "paid_moved", "bonus_moved"),
        ),
        (
            "ledger row {} ({}): amount {}, its lot moves {}",
            LedgerEntry.objects.annotate(moved=Coalesce(Sum(F("moves__paid") + F("moves__bonus")), 0))
            .exclude(amount=F("moved"))
            .values_list("pk", "kind", "amount", "moved"),
        ),
        (
            "user {}: balance {}, lots left {}",
            User.objects.annotate(lots_left=Coalesce(Sum(F("lots__paid_left") + F("lots__bonus_left")), 0))
            .exclude(balance=F("lots_left"))
            .values_list("username", "balance", "lots_left"),
        ),
        (
            "ledger row {} ({}) of order {} moved lot {} of order {}",
            LotMove.objects.filter(entry__kind__in=own_lot)
            .exclude(lot__order=F("entry__order"))
            .values_list("entry_id", "entry__kind", "entry__order", "lot_id", "lot__order"),
        ),
        (
            "ledger row {} of user {} moved lot {} of user {}",
            LotMove.objects.exclude(lot__user=F("entry__user")).values_list("entry_id", "entry__user", "lot_id", "lot__user"),
        ),
        (
            "ledger row {} ({}): a share of paid {} and bonus {}",
            LotMove.objects.filter(
                (Q(entry__kind__in=[kinds.BONUS, kinds.BONUS_REMOVAL, kinds.BONUS_RETURN, kinds.BONUS_EXPIRY]) & ~Q(paid=0))
                | (Q(entry__kind__in=[kinds.RECHARGE, kinds.REFUND, kinds.REFUND_RETURN]) & ~Q(bonus=0))
            ).values_list("entry_id", "entry__kind", "paid", "bonus"),
        ),
    ]
    return [(message, *queryset.query.sql_with_params()) for message, queryset in checks]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    uses_db = item.get_closest_marker("django_db") or DB_FIXTURES & set(item.fixturenames)
    if uses_db and not item.get_closest_marker("breaks_money_invariants"):
        problems = money_invariant_violations()
        assert not problems, "money invariants broken: " + "; ".join(problems)
    return result


def pytest_collection_finish(session):
    """What importing and collecting made lives as long as the process: move it out of the
    garbage collector's sight, so that each full collection during the run (and pytest's at
    the end) no longer walks all of Django and every test module."""
    gc.collect()
    gc.freeze()


# Tests that take many seconds on their own (a database migrated back and forth, gunicorn
# started on a freshly migrated database): run first, so that the workers share out the rest
# around them rather than one of them finishing the run alone with one of these.
LONG_TESTS = (
    "tests/test_migrations_upgrade.py::",
    "tests/payments/test_sandbox_in_process.py::test_gunicorn",
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_TESTS))

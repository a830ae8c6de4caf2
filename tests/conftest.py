from __future__ import annotations

import threading

import pytest
from django.conf import settings
from wechatpy.oauth import WeChatOAuth
from wechatpy.pay import WeChatPay

from sandbox import worker
from tests.factories import make_user
from tests.helpers import Receiver


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
    """Each balance equals the sum of its ledger rows; refunds never exceed what was paid."""
    from django.db.models import F, Q, Sum
    from django.db.models.functions import Coalesce

    from accounts.models import User
    from orders.models import RechargeOrder, Refund

    problems = [
        f"user {u.username}: balance {u.balance} != ledger {u.ledger}"
        for u in User.objects.annotate(ledger=Coalesce(Sum("ledger_entries__amount"), 0)).exclude(balance=F("ledger"))
    ]
    refunded = Coalesce(Sum("refunds__amount", filter=Q(refunds__status=Refund.Status.SUCCESS)), 0)
    problems += [
        f"order {o.out_trade_no}: refunded {o.refunded_amount}, successful refunds {o.done}, amount {o.amount}"
        for o in RechargeOrder.objects.annotate(done=refunded).filter(Q(refunded_amount__gt=F("amount"))
                                                                       | ~Q(refunded_amount=F("done")))
    ]
    committed = Coalesce(Sum("refunds__amount", filter=~Q(refunds__status__in=[Refund.Status.CLOSED,
                                                                               Refund.Status.FAILED])), 0)
    problems += [f"order {o.out_trade_no}: refunds {o.committed} exceed amount {o.amount}"
                 for o in RechargeOrder.objects.annotate(committed=committed).filter(committed__gt=F("amount"))]
    return problems


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    uses_db = item.get_closest_marker("django_db") or DB_FIXTURES & set(item.fixturenames)
    if uses_db and not item.get_closest_marker("breaks_money_invariants"):
        problems = money_invariant_violations()
        assert not problems, "money invariants broken: " + "; ".join(problems)
    return result


def pytest_collection_modifyitems(config, items):
    """Browser tests run one at a time on one xdist worker (`--dist loadgroup`): two Chromiums
    and two live servers on two cores made their timeouts flaky; the rest spread out."""
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("browser"))

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

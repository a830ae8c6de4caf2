"""The site's calls to its own sandbox are answered in process: one sync worker never waits for itself."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings

from orders.models import RechargeOrder
from payments import services
from tests.factories import make_user


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_prepay_and_query_reach_the_sandbox_with_no_server_listening(settings):
    settings.SANDBOX_IN_PROCESS = True
    settings.SITE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    user = make_user("inproc", openid="oInProc")
    result = services.prepay(user, 1000, RechargeOrder.Channel.JSAPI, "127.0.0.1")
    assert result.order.prepay_id.startswith("wx") and result.pay_params["package"] == f"prepay_id={result.order.prepay_id}"
    assert services.sync_order(result.order).status == RechargeOrder.Status.PENDING  # orderquery answered too


def test_gunicorn_with_one_sync_worker_places_orders_through_its_own_sandbox(tmp_path):
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WECHAT_", "SANDBOX_", "DATABASE_"))}
    env.update(
        DJANGO_DEBUG="1",
        DJANGO_SETTINGS_MODULE="devtools.settings",
        SITE_URL=site,
        DATABASE_URL=f"sqlite:///{tmp_path}/site.sqlite3",
        SANDBOX_NOTIFY_THREAD="0",
    )
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True, timeout=120)
    subprocess.run(
        [python, "manage.py", "demo_data"], cwd=settings.BASE_DIR, env=env, check=True, timeout=60, capture_output=True
    )
    server = subprocess.Popen(
        [
            python,
            "-m",
            "gunicorn",
            "wxrecharge.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--timeout",
            "20",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        session = requests.Session()
        for _ in range(100):
            try:
                session.get(site + "/healthz", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening, or its worker still starting
                time.sleep(0.1)
        page = session.get(site + "/accounts/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        session.post(
            site + "/accounts/login/",
            timeout=10,
            headers={"Referer": site + "/accounts/login/"},
            data={"username": "demo", "password": "wxrecharge-demo", "csrfmiddlewaretoken": token},
        )
        # Binding WeChat: the callback exchanges the code with the sandbox from inside a request.
        bound = session.get(site + "/accounts/wechat/authorize/?next=/recharge/", timeout=10)
        assert bound.status_code == 200 and urlpath(bound.url) == "/recharge/"
        answers = [
            session.post(
                site + "/payments/jsapi/prepay/",
                json={"amount": f"{n}.00"},
                timeout=15,
                headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": site + "/recharge/"},
            )
            for n in (1, 2, 3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:200] for a in answers]
        status = session.get(site + f"/payments/orders/{answers[0].json()['out_trade_no']}/status/", timeout=15)
        assert status.json()["status"] == "pending"
    finally:
        server.terminate()
        server.wait(timeout=20)


def urlpath(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path

"""The shared access_token against the sandbox's stable_token over real HTTP: a call that
WeChat answers 42001 (expired) or 40001 is made again once with a refreshed token."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings

from accounts import wechat_token
from common.wechat import api_base_url
from devtools.wechat_sandbox import tokens as sandbox_tokens
from tests.helpers import NEEDS_ROW_LOCKS, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def domain_ips(token: str) -> dict:
    return requests.get(api_base_url() + "cgi-bin/get_api_domain_ip", params={"access_token": token}, timeout=10).json()


def test_an_expired_token_is_refreshed_once_and_the_call_made_again(sandbox_url):
    assert "ip_list" in wechat_token.call_with_token(domain_ips)
    sandbox_tokens.expire_all(settings.WECHAT_APPID)  # WeChat now answers 42001 for it
    assert "ip_list" in wechat_token.call_with_token(domain_ips)
    assert sandbox_tokens.count_issued(settings.WECHAT_APPID) == 2


def test_the_mini_program_has_a_token_of_its_own(sandbox_url):
    official = wechat_token.access_token(wechat_token.OFFICIAL)
    mini = wechat_token.access_token(wechat_token.MINIPROGRAM)
    assert official != mini
    assert sandbox_tokens.count_issued(settings.WECHAT_MINIPROGRAM_APPID) == 1


SCRIPT = """
import django, sys, time
django.setup()
from accounts import wechat_token
asked = []
ask = wechat_token._stable_token
wechat_token._stable_token = lambda *args: asked.append(1) or ask(*args)  # counts this process's calls to WeChat
sys.stdin.readline()  # both processes are ready: go
print(wechat_token.access_token(wechat_token.OFFICIAL), len(asked), flush=True)
"""


@NEEDS_ROW_LOCKS[0]
@NEEDS_ROW_LOCKS[1]
def test_two_processes_refreshing_at_once_make_one_refresh_and_share_its_token(sandbox_url):
    """Two server processes (or a web server and the worker) that find no token at the same
    moment: one asks WeChat, the other waits for it; both use the one token WeChat issued."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            cwd=settings.BASE_DIR,
            env=subprocess_env(settings.SITE_URL),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(2)  # both have started Django and wait on stdin
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    outputs = [process.communicate(timeout=60) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in outputs]
    tokens, asked = zip(*(out.split() for out, _ in outputs), strict=True)
    assert len(set(tokens)) == 1 and tokens[0]
    assert sorted(asked) == ["0", "1"]  # one process asked WeChat; the other used its answer
    assert sandbox_tokens.count_issued(settings.WECHAT_APPID) == 1
    assert tokens[0] not in "".join(err for _, err in outputs)  # never logged

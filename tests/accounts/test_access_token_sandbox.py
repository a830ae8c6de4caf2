"""The shared access_token against the sandbox's stable_token over real HTTP: a call that
WeChat answers 42001 (expired) or 40001 is made again once with a refreshed token."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings

from accounts import wechat_token
from common.wechat import api_base_url
from devtools.wechat_sandbox import tokens as sandbox_tokens

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

"""The 企业微信 group robot that receives the site's alerts, over real HTTP (devtools/wechat_sandbox/robot.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox.models import RobotMessage
from devtools.wechat_sandbox.robot import robot_down, robot_messages

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "dev-alerts"


def send(sandbox_url, body, key: str | None = KEY, path: str = "robot/send") -> requests.Response:
    params = {"key": key} if key is not None else {}
    kwargs = {"json": body} if not isinstance(body, str) else {"data": body}
    return requests.post(sandbox_url + path, params=params, timeout=10, **kwargs)


def text(content: str) -> dict:
    return {"msgtype": "text", "text": {"content": content}}


def errcode(response: requests.Response) -> int:
    assert response.status_code == 200
    return response.json()["errcode"]


def test_a_text_and_a_markdown_alert_reach_the_group(sandbox_url):
    assert send(sandbox_url, text("对账不平：2026-12-06 差 ¥8.88")).json() == {"errcode": 0, "errmsg": "ok"}
    markdown = {"msgtype": "markdown", "markdown": {"content": '**通知积压**\n> 待发 <font color="warning">132</font> 条'}}
    assert errcode(send(sandbox_url, markdown)) == 0
    shown = robot_messages()
    assert [m["msgtype"] for m in shown] == ["markdown", "text"]  # newest first
    assert shown[1]["content"] == "对账不平：2026-12-06 差 ¥8.88" and shown[1]["key"] == KEY
    assert robot_messages(key="other") == []
    page = Client().get(reverse("sandbox:robot")).content.decode()
    assert page.index("通知积压") < page.index("对账不平") and 'data-testid="robot-state">正常' in page


def test_wecoms_own_path_works_too(sandbox_url):
    assert errcode(send(sandbox_url, text("hello"), path="cgi-bin/webhook/send")) == 0
    assert len(robot_messages()) == 1


@pytest.mark.parametrize("key", [None, "", "  "])
def test_a_webhook_without_a_key_answers_93000(sandbox_url, key):
    answer = send(sandbox_url, text("x"), key=key).json()
    assert answer["errcode"] == 93000 and answer["errmsg"].startswith("invalid webhook url")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"msgtype": "sms", "sms": {"content": "x"}}, 40008),
        ({"text": {"content": "x"}}, 40008),
        (text(""), 44004),
        ({"msgtype": "text"}, 44004),
        ({"msgtype": "markdown", "markdown": {"content": ""}}, 44004),
        (text("告" * 683), 40058),  # 2049 bytes
        ({"msgtype": "markdown", "markdown": {"content": "x" * 4097}}, 40058),
        ("not json", 40035),
        ([1, 2], 40035),
    ],
)
def test_wecoms_checks_of_a_message(sandbox_url, body, code):
    assert errcode(send(sandbox_url, body)) == code
    assert not RobotMessage.objects.exists()


def test_the_longest_text_is_taken(sandbox_url):
    assert errcode(send(sandbox_url, text("x" * 2048))) == 0


def test_wecoms_other_message_types_are_kept_as_json(sandbox_url):
    news = {"msgtype": "news", "news": {"articles": [{"title": "日报", "url": "https://example.com"}]}}
    assert errcode(send(sandbox_url, news)) == 0
    assert '"title": "日报"' in robot_messages()[0]["content"]


def test_a_robot_takes_20_messages_a_minute(sandbox_url, time_machine):
    for i in range(20):
        assert errcode(send(sandbox_url, text(f"告警 {i}"))) == 0
    assert errcode(send(sandbox_url, text("第 21 条"))) == 45009
    assert errcode(send(sandbox_url, text("另一个机器人"), key="another")) == 0
    time_machine.move_to(timezone.now() + timedelta(seconds=61), tick=True)
    assert errcode(send(sandbox_url, text("一分钟后"))) == 0
    assert len(robot_messages(KEY)) == 21


def test_a_robot_that_is_down_answers_http_500(sandbox_url):
    robot_down(True)
    assert send(sandbox_url, text("x")).status_code == 500
    assert not RobotMessage.objects.exists()
    robot_down(False)
    assert errcode(send(sandbox_url, text("x"))) == 0


def test_the_group_page_takes_the_robot_down_and_up(db):
    client = Client()
    client.post(reverse("sandbox:robot_toggle"), {"down": "1"})
    assert 'data-testid="robot-state">宕机' in client.get(reverse("sandbox:robot")).content.decode()
    client.post(reverse("sandbox:robot_toggle"), {"down": "0"})
    assert 'data-testid="robot-state">正常' in client.get(reverse("sandbox:robot")).content.decode()
    assert 'data-testid="no-robot-messages"' in client.get(reverse("sandbox:robot")).content.decode()


def test_the_admin_lists_the_robots_messages(sandbox_url, admin_client):
    send(sandbox_url, text("对账不平"))
    assert "对账不平" in admin_client.get(reverse("admin:sandbox_robotmessage_changelist")).content.decode()

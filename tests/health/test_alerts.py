"""Alerts, as the 企业微信 group robot and the admins' mailbox receive them: one for the order
sweeper stopping, none again within 15 minutes, then one carrying what was held back; a robot
that is down is recorded and shown and stops nothing; the robot's key is never written anywhere."""

from __future__ import annotations

import logging

import pytest
import requests
import responses
from django.core import mail
from django.core.management import call_command

from common.models import Heartbeat
from health import alerts
from health.models import Alert, AlertState
from outbox import delivery
from payments.models import Incident
from tests.admin import settled_order
from tests.factories import make_user
from tests.health import KEY, WEBHOOK, an_incident, others_running, received, worker_pass

pytestmark = pytest.mark.django_db


def answering(robot, **answer) -> None:
    robot.replace(responses.POST, WEBHOOK, **answer)


def step(clock, seconds: float) -> None:
    """Time passes; the jobs other than the order sweeper keep running, and the outbox worker
    makes a pass (which runs the alert watcher)."""
    clock.shift(seconds)
    others_running("sweep_orders")
    worker_pass()


def test_the_watcher_runs_in_the_outbox_workers_pass():
    assert delivery.CONSUMERS["health"].run is alerts.run


def test_stopping_the_order_sweeper_sends_one_alert_then_the_held_back_ones_after_15_minutes(robot, admin_client, clock, caplog):
    caplog.set_level(logging.DEBUG)
    call_command("reconcile_orders")
    step(clock, 0)
    step(clock, 45)
    assert received(robot) == []
    step(clock, 15)  # 60 s after its last pass
    (first,) = received(robot)
    assert "订单巡检" in first and "已停止：最近一次成功 1 分钟前（应每 20 秒 运行一次）" in first
    assert "[在运营后台查看](http://127.0.0.1:8000/admin/common/heartbeat/)" in first
    assert "sweep_orders" in first and "另有" not in first
    assert 'data-state="red"' in admin_client.get("/admin/").content.decode()

    step(clock, 15)
    step(clock, 15)
    assert len(received(robot)) == 1  # still stopped: nothing new to say
    clock.shift(30)
    call_command("sweep_orders")  # restarted at 2 minutes …
    step(clock, 0)
    step(clock, 60)  # … and stopped again: red again, 2 minutes after the first alert
    assert len(received(robot)) == 1
    assert AlertState.objects.get(kind="job:sweep_orders").held_back == 1
    for _ in range(17):  # the worker goes on; the next alert waits for its 15 minutes
        step(clock, 45)
    assert len(received(robot)) == 1
    step(clock, 15)  # 15 minutes after the first alert
    second = received(robot)[1]
    assert "订单巡检" in second and "已停止" in second and "另有 1 条同类告警被合并" in second
    assert list(Alert.objects.order_by("pk").values_list("held_back", "outcome")) == [(0, "sent"), (1, "sent")]
    assert KEY not in caplog.text


def test_several_workers_send_an_alert_once(robot, clock):
    others_running()
    an_incident()
    assert alerts.watch() == 1
    assert alerts.watch() == 0  # another worker, the same moment
    assert len(received(robot)) == 1 and "未处理异常" in received(robot)[0]


def test_news_within_15_minutes_is_held_back_and_goes_out_by_itself_afterwards(robot, clock):
    others_running()
    an_incident()
    alerts.watch()
    clock.shift(60)
    others_running()
    Incident.report(Incident.Kind.AMOUNT_MISMATCH, "金额不符", order=settled_order(make_user("two", openid="oTwo")))
    alerts.watch()
    assert len(received(robot)) == 1
    clock.shift(13 * 60)
    others_running()
    alerts.watch()
    assert len(received(robot)) == 1
    clock.shift(60)  # 15 minutes after the first
    others_running()
    alerts.watch()
    assert len(received(robot)) == 2
    second = received(robot)[1]
    assert "未处理异常" in second and "2 条待处理" in second
    assert "另有 1 条同类告警被合并：\n- 10:01 2 条待处理" in second


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"status": 500, "body": "Internal Server Error"}, "HTTP 500"),
        ({"body": requests.ConnectTimeout("connect timeout")}, "超时（5 秒）"),
        ({"json": {"errcode": 45009, "errmsg": "api freq out of limit"}}, "errcode 45009: api freq out of limit"),
        (
            {"body": requests.ConnectionError(f"Max retries exceeded with url: /cgi-bin/webhook/send?key={KEY}")},
            "ConnectionError: Max retries exceeded with url: /cgi-bin/webhook/send?key=***",
        ),
    ],
)
def test_a_robot_that_is_down_is_recorded_and_shown_and_stops_nothing(robot, admin_client, clock, caplog, answer, error):
    caplog.set_level(logging.DEBUG)
    answering(robot, **answer)
    others_running()
    an_incident()
    delivery.run_pass()  # raises nothing
    alert = Alert.objects.get()
    assert (alert.outcome, alert.error, alert.channels) == ("failed", f"企业微信群机器人：{error}", "企业微信群机器人：失败")
    html = admin_client.get("/admin/").content.decode()
    channel = html[html.index('data-testid="health-alert_channel"') :].split("</li>")[0]
    assert 'data-state="red"' in channel and "发送失败" in channel and error.split(":")[0] in channel
    for written in [html, caplog.text, alert.text, alert.error, *Heartbeat.objects.values_list("last_error", flat=True)]:
        assert KEY not in written


def test_an_alert_no_channel_took_is_carried_by_the_next(robot, clock):
    others_running()
    answering(robot, status=502)
    an_incident()
    alerts.watch()
    answering(robot, json={"errcode": 0, "errmsg": "ok"})
    clock.shift(15 * 60)
    others_running()
    alerts.watch()
    second = received(robot)[1]
    assert "另有 1 条同类告警被合并" in second and "未送达：1 条待处理" in second
    assert Alert.objects.order_by("pk").last().outcome == "sent"


def test_the_admins_are_mailed_when_set(settings, clock):
    settings.ADMINS = [("张三", "ops@example.com")]
    others_running()
    an_incident()
    assert alerts.watch() == 1
    (message,) = mail.outbox
    assert message.to == ["ops@example.com"] and message.subject == "[wxrecharge] 【余额充值】未处理异常"
    assert "1 条待处理" in message.body
    assert "在运营后台查看：http://127.0.0.1:8000/admin/payments/incident/?state=open" in message.body
    assert Alert.objects.get().channels == "邮件：成功"


def test_mail_that_fails_is_recorded_beside_a_robot_that_took_it(robot, settings, clock):
    settings.ADMINS = [("张三", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens
    others_running()
    an_incident()
    alerts.watch()
    alert = Alert.objects.get()
    assert alert.outcome == "partial" and alert.channels == "企业微信群机器人：成功；邮件：失败"
    assert alert.error.startswith("邮件：ConnectionRefusedError")
    assert len(received(robot)) == 1


def test_the_panel_names_the_robot_by_the_end_of_its_key_only(robot, admin_client, clock):
    others_running()
    html = admin_client.get("/admin/").content.decode()
    assert "企业微信群机器人 已配置（key 末 4 位 9f7e）" in html and KEY not in html and "qyapi" not in html


def test_with_no_channel_the_watcher_does_nothing(django_assert_num_queries):
    an_incident()
    with django_assert_num_queries(0):
        assert alerts.run() == 0
    assert not Alert.objects.exists()

"""The health panel, first on the admin's start page, as an operator sees it: one green line
when all is well; a job silent for three intervals in red within a minute of its last pass;
only for superusers and holders of health.view_health."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command

from common.models import Heartbeat
from tests.admin import operator
from tests.health import a_pass_of, others_running

pytestmark = pytest.mark.django_db


def start_page(client) -> str:
    response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


def panel(html: str) -> str:
    start = html.index('data-testid="health"')
    return html[start : html.index('data-testid="dashboard"', start)]


def job_row(html: str, job: str) -> str:
    return re.search(rf'<tr[^>]*data-testid="job-{job}"[^>]*>.*?</tr>', html, re.S)[0]


def test_all_well_is_one_green_line_with_the_rows_folded_away(admin_client, clock):
    others_running()
    html = start_page(admin_client)
    assert html.index('data-testid="health"') < html.index('data-testid="dashboard"')  # first on the page
    shown = panel(html)
    assert re.search(r'data-testid="health-summary">一切正常<', shown)
    assert '<details class="wx-health__details">' in shown  # folded, not open
    for job in ("sweep_orders", "reconcile_bill", "deliver_webhooks", "expire_bonus"):
        assert 'data-state="ok"' in job_row(shown, job) and "正常" in job_row(shown, job)
    assert "20 秒" in job_row(shown, "sweep_orders") and "10 分钟" in job_row(shown, "reconcile_bill")


def test_stopping_the_order_sweeper_turns_the_panel_red_within_a_minute(admin_client, clock):
    call_command("reconcile_orders")  # its former name, as older deployments start it
    others_running("sweep_orders")
    clock.shift(59)
    others_running("sweep_orders")
    assert "一切正常" in panel(start_page(admin_client))
    clock.shift(1)  # 60 s: three passes of 20 s missed
    others_running("sweep_orders")
    shown = panel(start_page(admin_client))
    assert re.search(r'data-testid="health-summary">1 项需要处理<', shown)
    assert '<details class="wx-health__details" open>' in shown
    row = job_row(shown, "sweep_orders")
    assert 'data-state="red"' in row and "已停止" in row
    assert "最近一次成功 1 分钟前（应每 20 秒 运行一次）" in row


def test_a_job_never_seen_or_failing_is_red(admin_client, clock):
    others_running("expire_bonus", "reconcile_bill")
    a_pass_of("reconcile_bill", error=RuntimeError("账单下载失败"))
    just_started = job_row(panel(start_page(admin_client)), "expire_bonus")
    assert 'data-state="warn"' in just_started and "等待第一次运行" in just_started  # its first pass may be minutes away
    clock.shift(15 * 60)  # three of its intervals after the site's first job ran
    others_running("expire_bonus", "reconcile_bill")
    a_pass_of("reconcile_bill", error=RuntimeError("账单下载失败"))
    shown = panel(start_page(admin_client))
    assert "2 项需要处理" in shown
    assert 'data-state="red"' in job_row(shown, "expire_bonus") and "从未运行" in job_row(shown, "expire_bonus")
    failing = job_row(shown, "reconcile_bill")
    assert 'data-state="red"' in failing and "出错" in failing and "RuntimeError: 账单下载失败" in failing


def test_the_panel_is_for_superusers_and_those_who_may_view_health(clock):
    others_running()
    _, orders_only = operator("orders_only", "orders.view_rechargeorder")
    assert 'data-testid="health"' not in start_page(orders_only)
    _, watcher = operator("watcher", "health.view_health")
    html = start_page(watcher)
    assert 'data-testid="health"' in html and "一切正常" in html
    # The lists it links to for the jobs and the alerts open for them too.
    assert watcher.get("/admin/common/heartbeat/").status_code == 200
    assert watcher.get("/admin/health/alert/").status_code == 200
    assert orders_only.get("/admin/common/heartbeat/").status_code == 403


def test_the_jobs_list_shows_each_heartbeat_read_only(admin_client, clock):
    a_pass_of("sweep_orders", error=RuntimeError("boom"))
    html = admin_client.get("/admin/common/heartbeat/").content.decode()
    assert "订单巡检" in html and "sweep_orders" in html and "RuntimeError: boom" in html
    beat = Heartbeat.objects.get()
    page = admin_client.get(f"/admin/common/heartbeat/{beat.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # nothing to edit

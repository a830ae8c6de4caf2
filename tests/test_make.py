"""`make run`: the port it serves on, the SITE_URL that follows it, and the reconciler beside it.

`make -n` prints the commands without running them: no server is started here.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.conf import settings

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def dry_run(*args: str) -> list[str]:
    # A PORT or SITE_URL in the caller's environment would be taken by the Makefile's ?=.
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SITE_URL", "MAKEFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "-n", "run", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.splitlines()


def command(lines: list[str], name: str) -> str:
    (line,) = [line for line in lines if f"manage.py {name}" in line]
    return line


def test_make_run_serves_on_8000_by_default_with_the_site_url_to_match():
    lines = dry_run()
    assert command(lines, "runserver").endswith("manage.py runserver 127.0.0.1:8000")
    for name in ("runserver", "sweep_orders", "migrate"):
        assert "DJANGO_DEBUG=1 SITE_URL='http://127.0.0.1:8000'" in command(lines, name)


def test_make_run_uses_the_sandbox_settings_for_every_command():
    lines = dry_run()
    for name in ("migrate", "demo_data", "sweep_orders", "reconcile_bill", "runserver"):
        assert "DJANGO_SETTINGS_MODULE=devtools.settings " in command(lines, name)


def test_make_run_with_a_port_serves_there_and_the_site_url_follows():
    lines = dry_run("PORT=8001")
    assert command(lines, "runserver").endswith("manage.py runserver 127.0.0.1:8001")
    # The reconciler asks the sandbox (SITE_URL/sandbox/) about orders: it must name the same port.
    for name in ("runserver", "sweep_orders"):
        assert "SITE_URL='http://127.0.0.1:8001'" in command(lines, name)
        assert "8000" not in command(lines, name)


def test_make_run_keeps_the_order_sweeper_running_beside_the_server():
    sweeper = command(dry_run("PORT=8001"), "sweep_orders")
    assert "sweep_orders --loop" in sweeper and sweeper.rstrip("; \\").endswith("sweeper=$!")


def test_an_explicit_site_url_wins_over_the_port():
    lines = dry_run("PORT=8002", "SITE_URL=https://dev.example.com")
    assert "SITE_URL='https://dev.example.com'" in command(lines, "runserver")
    assert command(lines, "runserver").endswith("runserver 127.0.0.1:8002")

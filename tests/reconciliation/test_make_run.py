"""`make run` keeps reconcile_bill running beside the web server, and stops it with it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from django.conf import settings

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def test_make_run_starts_the_bill_reconciler_beside_the_server_and_stops_it_with_it():
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "SITE_URL", "MAKEFLAGS", "MAKELEVEL")}
    lines = subprocess.run(
        ["make", "-n", "run", "PORT=8001"], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    (start,) = [line for line in lines if "manage.py reconcile_bill" in line]
    assert "SITE_URL='http://127.0.0.1:8001'" in start and "reconcile_bill --loop" in start
    assert start.rstrip("; \\").endswith("bill_reconciler=$!")
    (trap,) = [line for line in lines if line.startswith("trap ")]
    assert "$bill_reconciler" in trap and "$sweeper" in trap

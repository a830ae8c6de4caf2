"""`manage.py reconcile_bill`: one line per day, and exit codes a timer or a script can act on
(0 done, 1 failed, 2 refused date, 3 try again later); `--loop` stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from reconciliation.models import BillDay
from tests.helpers import subprocess_env
from tests.reconciliation.bills import BEIJING, bill, line, pay_row, summary_of
from tests.reconciliation.books import paid, pending, transaction_id
from tests.reconciliation.conftest import DAY

AT = datetime(2026, 11, 23, 12, 0, tzinfo=BEIJING)


def run(*args: str) -> tuple[str, str, int]:
    """The command's stdout, stderr and exit code, as a shell would see them."""
    out, err = [], []

    class Sink:
        def __init__(self, lines):
            self.lines = lines

        def write(self, text):
            self.lines.append(text)

        def flush(self):
            pass

    try:
        call_command("reconcile_bill", *args, stdout=Sink(out), stderr=Sink(err))
        code = 0
    except CommandError as exc:
        err.append(str(exc))
        code = exc.returncode
    return "".join(out), "".join(err), code


@pytest.fixture(autouse=True)
def _now(clock):
    pass


@pytest.mark.django_db
class TestOnce:
    def test_it_reconciles_yesterday_by_default_and_prints_the_days_line(self, wechat, payer):
        order = paid(payer, 34500, AT)
        lost = pending(payer, 1000, AT)
        wechat.bills[DAY] = bill(
            pay_row(order.out_trade_no, 34500, order.transaction_id, AT),
            pay_row(lost.out_trade_no, 1000, transaction_id(), AT),
            pay_row("20261123120000109999999999", 500, transaction_id(), AT),
        )
        out, err, code = run()
        assert wechat.calls == [DAY] and code == 0 and err == ""
        assert out == (
            "2026-11-23: 有差异 — WeChat 3 笔 ¥360.00 退款 ¥0.00 手续费 ¥2.16; "
            "ours 2 笔 ¥355.00 退款 ¥0.00; differences 2 (settled 1, incidents 1)\n"
        )

    def test_a_balanced_day_exits_0(self, wechat):
        out, _, code = run("--date", "2026-11-23")
        assert code == 0 and out.startswith("2026-11-23: 已平 — WeChat 0 笔 ¥0.00")

    def test_the_same_day_again_prints_the_same_line(self, wechat, payer):
        lost = pending(payer, 1000, AT)
        wechat.bills[DAY] = bill(pay_row(lost.out_trade_no, 1000, transaction_id(), AT))
        first, _, _ = run("--date", "2026-11-23")
        again, _, code = run("--date", "2026-11-23")
        assert again == first and code == 0 and "settled 1" in again

    def test_a_bill_not_ready_exits_3(self, wechat, payer):
        paid(payer, 1000, AT)
        out, err, code = run("--date", "2026-11-23")
        assert code == 3 and out.startswith("2026-11-23: 未就绪 — 微信说该日没有账单") and "未完成对账" in err

    def test_a_network_failure_exits_1(self, wechat):
        from payments.providers.base import WeChatError

        wechat.bills[DAY] = WeChatError("pay/downloadbill: ConnectTimeout", "NETWORK", retryable=True)
        out, _, code = run("--date", "2026-11-23")
        assert code == 1 and out == "2026-11-23: 下载失败 — NETWORK：pay/downloadbill: ConnectTimeout\n"

    def test_a_bill_that_does_not_verify_exits_1_naming_the_line(self, wechat, payer):
        row = pay_row("20261123120000101234567890", 1000, transaction_id(), AT)
        wechat.bills[DAY] = bill(line(row).replace("`JSAPI", "JSAPI"), summary=summary_of([row]))
        out, _, code = run("--date", "2026-11-23")
        assert code == 1 and out.startswith("2026-11-23: 账单无效 — 第 2 行格式错误：第 9 个字段不以反引号开头")

    @pytest.mark.parametrize(("day", "message"), [("2026-11-24", "是今天"), ("2027-01-01", "在未来")])
    def test_today_and_the_future_exit_2_and_store_nothing(self, wechat, day, message):
        out, err, code = run("--date", day)
        assert code == 2 and out == "" and f"{day}: 拒绝 — " in err and message in err
        assert not BillDay.objects.exists() and wechat.calls == []

    @pytest.mark.parametrize("value", ["20261123", "2026-13-01", "yesterday"])
    def test_a_date_that_is_not_one_exits_2(self, wechat, value):
        _, err, code = run("--date", value)
        assert code == 2 and "YYYY-MM-DD" in err and not BillDay.objects.exists()

    def test_a_day_another_runner_holds_exits_3(self, wechat):
        BillDay.for_date(DAY).claim(timedelta(minutes=10))
        out, _, code = run("--date", "2026-11-23")
        assert code == 3 and out.startswith("2026-11-23: 跳过 — 2026-11-23 正由另一个进程对账") and wechat.calls == []

    def test_loop_takes_no_date(self, wechat):
        _, err, code = run("--loop", "--date", "2026-11-23")
        assert code == 2 and "--date" in err


@pytest.mark.django_db
def test_the_loop_reconciles_every_due_day_once_a_pass(wechat, payer):
    BillDay.objects.create(date=DAY - timedelta(days=1), status=BillDay.Status.BALANCED)
    paid(payer, 1000, AT)  # yesterday has a payment but WeChat no bill yet: 未就绪
    # One pass, then stop (as SIGTERM would between passes).
    with (
        mock.patch.object(signal, "signal"),
        mock.patch.object(threading.Event, "wait", return_value=True),
        mock.patch("common.loop.close_old_connections"),
    ):  # it would close the test's own connection
        out, _, code = run("--loop", "--days", "3")
    assert code == 0
    assert wechat.calls == [DAY - timedelta(days=2), DAY]
    assert out.splitlines()[-1] == "reconciled 1 of 2 due days"
    assert "2026-11-21: 已平" in out and "2026-11-23: 未就绪" in out


@pytest.mark.django_db(transaction=True)
def test_the_loop_keeps_going_after_failures_and_stops_cleanly_on_sigterm():
    # Nothing listens on port 9: every download fails at once, as with WeChat unreachable.
    loop = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile_bill", "--loop", "--interval", "0.2", "--days", "2"],
        cwd=settings.BASE_DIR,
        env=subprocess_env("http://127.0.0.1:9"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not BillDay.objects.filter(attempts__gte=2).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    assert loop.returncode == 0, err
    assert BillDay.objects.filter(attempts__gte=2, status=BillDay.Status.FAILED).exists(), out + err
    assert ": 下载失败 — " in out and "due days" in out

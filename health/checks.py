"""The built-in health checks and the snapshot that the admin's health panel and the alert
watcher read (docs/operations.md, "告警与健康面板").

Each check is registered in common.health (`@check`); other apps register theirs the same way
in their own modules. A check answers a `Check` (or several): red rows are what an operator
must look at, and what the watcher alerts on.

Windows: notifies rejected or erroring and orders WeChat refused count over the last hour
(news fades by itself, as these usually come in bursts that end); refunds closed or failed
over the last 24 hours (WeChat ended them; an operator should see each one within a day),
and every 退款异常 until it is resolved; webhook deliveries failed over the last 24 hours.
Open incidents count until an operator marks them handled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.admin import changelist_url
from common.health import CHECKS, OK, RED, WARN, Check, check
from common.models import Heartbeat
from common.redact import describe
from health import channels
from health.models import Alert
from orders.models import RechargeOrder, Refund
from outbox.models import Delivery
from payments.models import Incident, Notification

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
# A job is silent, and red, once this many of its intervals passed without a pass starting or
# ending, and at least SILENT_AT_LEAST (a pass of the 2-second outbox worker may wait a few
# webhook timeouts: that is not silence).
SILENT_INTERVALS = 3
SILENT_AT_LEAST = timedelta(minutes=1)


def silence(interval: float) -> timedelta:
    return max(timedelta(seconds=SILENT_INTERVALS * interval), SILENT_AT_LEAST)


# A webhook delivery still retrying after this many attempts (about 2.5 minutes of failing)
# is red; fewer is a warning (one refused POST is not yet an endpoint that is down).
DELIVERY_RED_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """A looping command whose heartbeat the panel expects (common.loop.repeat, `job=`)."""

    name: str
    label: str
    interval: float  # seconds: its command's default, until a heartbeat says otherwise


JOBS = [
    Job("sweep_orders", "订单巡检", 20),
    Job("reconcile_bill", "账单对账", 600),
    Job("deliver_webhooks", "消息推送", 2),
    Job("expire_bonus", "赠送过期", 300),
]
# The alert watcher runs inside deliver_webhooks' passes, at most once each 15 seconds
# (health/alerts.py); it has a heartbeat of its own, expected while a channel is configured.
WATCHER = Job("health_alerts", "告警巡检", 15)


@dataclass(frozen=True)
class JobState:
    """A job's row in the panel's table of background jobs."""

    job: Job
    interval: float
    beat: Heartbeat | None
    state: str
    short: str  # 正常, 已停止, 出错, 从未运行
    detail: str
    # The last success before it fell red (None when it never passed): identifies the episode.
    newest: datetime | None

    @property
    def succeeded_at(self) -> datetime | None:
        return self.beat.succeeded_at if self.beat else None


# -- formatting ---------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """A length of time for operators: 45 秒, 3 分钟, 2 小时, 3 天."""
    seconds = int(seconds)
    for unit, name in ((86400, "天"), (3600, "小时"), (60, "分钟")):
        if seconds >= unit:
            return f"{seconds // unit} {name}"
    return f"{max(seconds, 0)} 秒"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago, for operators: 3 分钟前 (从未: never)."""
    return "从未" if moment is None else f"{duration((now - moment).total_seconds())}前"


# -- the snapshot -------------------------------------------------------------------------------


def snapshot(now: datetime | None = None) -> list[Check]:
    """Every registered check's rows now. A check that raises becomes a red row of its own
    (and is logged): one broken check must not hide the others."""
    now = now or timezone.now()
    found: list[Check] = []
    for name, function in list(CHECKS.items()):
        try:
            result = function(now)
        except Exception as exc:
            logger.exception("health check %s failed", name)
            found.append(Check(kind=f"check:{name}", label="健康检查出错", state=RED, detail=describe(exc, limit=200)))
            continue
        found.extend([result] if isinstance(result, Check) else list(result))
    return found


# -- the background jobs --------------------------------------------------------------------------


def expected_jobs() -> list[Job]:
    return [*JOBS, WATCHER] if channels.configured() else list(JOBS)


def jobs(now: datetime | None = None) -> list[JobState]:
    """Each expected job's state, then any other job that has a heartbeat."""
    now = now or timezone.now()
    beats = {beat.job: beat for beat in Heartbeat.objects.all()}
    expected = expected_jobs()
    known = {job.name for job in expected}
    others = [Job(name, name, beat.interval) for name, beat in sorted(beats.items()) if name not in known]
    # A job no longer expected (the watcher, once no channel is configured) is not red for it.
    others = [job for job in others if job.name != WATCHER.name]
    running_since = min((beat.first_seen_at for beat in beats.values()), default=None)
    return [job_state(job, beats.get(job.name), now, running_since) for job in [*expected, *others]]


def job_state(job: Job, beat: Heartbeat | None, now: datetime, running_since: datetime | None = None) -> JobState:
    """Red when it never ran, has been silent (no pass, good or bad) for SILENT_INTERVALS
    intervals, or its last pass failed. A job that never ran on a site whose first job beat
    less than SILENT_INTERVALS of its intervals ago (`running_since`: the site has just been
    started, its jobs with it) is only a warning: it has not had the time for a first pass."""
    interval = beat.interval if beat else job.interval
    every = f"应每 {duration(interval)} 运行一次"
    if beat is None or (beat.succeeded_at is None and beat.failed_at is None):
        if running_since is not None and now - running_since < timedelta(seconds=SILENT_INTERVALS * interval):
            return JobState(job, interval, beat, WARN, "启动中", f"尚未运行：刚启动，等待第一次运行（{every}）", None)
        return JobState(job, interval, beat, RED, "从未运行", f"从未运行（{every}）", None)
    succeeded = beat.succeeded_at
    last = f"最近一次成功 {ago(succeeded, now)}" if succeeded else "从未成功"
    # A pass still running started lately: alive.
    latest = max(filter(None, [succeeded, beat.failed_at, beat.started_at]))
    if now - latest >= silence(interval):
        return JobState(job, interval, beat, RED, "已停止", f"已停止：{last}（{every}）", succeeded)
    if beat.last_pass_failed:
        detail = f"出错：{beat.last_error}（{last}）"
        return JobState(job, interval, beat, RED, "出错", detail, succeeded)
    return JobState(job, interval, beat, OK, "正常", f"正常：{last}", succeeded)


@check
def background_jobs(now: datetime) -> Iterable[Check]:
    url = changelist_url(Heartbeat)
    return [
        Check(
            kind=f"job:{state.job.name}",
            label=f"后台任务 {state.job.label}（{state.job.name}）",
            state=state.state,
            count=int(state.state == RED),
            detail=state.detail,
            url=url,
            newest=state.newest,
        )
        for state in jobs(now)
    ]


# -- the books and WeChat -----------------------------------------------------------------------


@check
def failing_notifies(now: datetime) -> Check:
    """WeChat Pay's notifies rejected (the signature, the XML, our mchid) or that failed while
    being applied, in the last hour."""
    since = now - HOUR
    found = Notification.objects.filter(
        received_at__gte=since, outcome__in=[Notification.Outcome.REJECTED, Notification.Outcome.ERROR]
    ).aggregate(
        count=Count("pk"),
        rejected=Count("pk", filter=Q(outcome=Notification.Outcome.REJECTED)),
        newest=Max("received_at"),
    )
    count, rejected = found["count"], found["rejected"]
    return Check(
        kind="notifies",
        label="支付通知验签失败或处理出错",
        state=RED if count else OK,
        count=count,
        detail=f"近 1 小时 {count} 条（已拒绝 {rejected}，处理失败 {count - rejected}）" if count else "近 1 小时没有",
        url=changelist_url(
            Notification,
            outcome__in=f"{Notification.Outcome.REJECTED},{Notification.Outcome.ERROR}",
            received_at__gte=since.isoformat(timespec="seconds"),
        ),
        newest=found["newest"],
    )


@check
def failed_refunds(now: datetime) -> Check:
    """Refunds WeChat closed or failed in the last 24 hours (the balance went back to the
    member, who is still owed their money), and every 退款异常 not yet resolved."""
    ended = [Refund.Status.CLOSED, Refund.Status.FAILED]
    found = Refund.objects.filter(Q(status__in=ended, settled_at__gte=now - DAY) | Q(status=Refund.Status.ABNORMAL)).aggregate(
        count=Count("pk"),
        abnormal=Count("pk", filter=Q(status=Refund.Status.ABNORMAL)),
        newest=Max(Coalesce("settled_at", "updated_at")),
    )
    count, abnormal = found["count"], found["abnormal"]
    detail = f"近 24 小时退款关闭或失败 {count - abnormal} 笔，退款异常 {abnormal} 笔" if count else "没有"
    statuses = ",".join(str(int(s)) for s in [*ended, Refund.Status.ABNORMAL])
    return Check(
        kind="refunds",
        label="退款关闭、失败或异常",
        state=RED if count else OK,
        count=count,
        detail=detail,
        url=changelist_url(Refund, status__in=statuses),
        newest=found["newest"],
    )


@check
def refused_orders(now: datetime) -> Check:
    """Orders WeChat refused to create in the last hour, by WeChat's code (NOAUTH: the
    merchant lacks the product; a wrong appid or mchid; …): usually the configuration."""
    since = now - HOUR
    rows = list(
        RechargeOrder.objects.filter(
            status=RechargeOrder.Status.CLOSED, close_reason=RechargeOrder.CloseReason.REFUSED, created_at__gte=since
        )
        .values("prepay_error")
        .annotate(count=Count("pk"), newest=Max("created_at"))
        .order_by("-count", "prepay_error")
    )
    count = sum(row["count"] for row in rows)
    codes = "、".join(f"{row['prepay_error'] or '未知'} ×{row['count']}" for row in rows[:5])
    return Check(
        kind="refused_orders",
        label="微信拒绝下单",
        state=RED if count else OK,
        count=count,
        detail=f"近 1 小时 {count} 笔（{codes}）" if count else "近 1 小时没有",
        url=changelist_url(
            RechargeOrder,
            close_reason=RechargeOrder.CloseReason.REFUSED,
            created_at__gte=since.isoformat(timespec="seconds"),
        ),
        newest=max((row["newest"] for row in rows), default=None),
    )


@check
def open_incidents(now: datetime) -> Check:
    found = Incident.objects.filter(resolved_at__isnull=True).aggregate(count=Count("pk"), newest=Max("created_at"))
    count = found["count"]
    return Check(
        kind="incidents",
        label="未处理异常",
        state=RED if count else OK,
        count=count,
        detail=f"{count} 条待处理" if count else "没有",
        url=changelist_url(Incident, state="open"),
        newest=found["newest"],
    )


@check
def failing_deliveries(now: datetime) -> Check:
    """Webhook deliveries to the merchant that failed (every retry used) in the last 24 hours,
    or are still retrying after errors."""
    failed = Q(status=Delivery.Status.FAILED, last_attempt_at__gte=now - DAY)
    retrying = Q(status=Delivery.Status.PENDING, attempts__gt=0) & ~Q(last_error="")
    found = Delivery.objects.filter(failed | retrying).aggregate(
        failed=Count("pk", filter=failed),
        stuck=Count("pk", filter=retrying & Q(attempts__gte=DELIVERY_RED_ATTEMPTS)),
        retrying=Count("pk", filter=retrying),
        newest=Max("last_attempt_at"),
    )
    failed_count, retrying_count = found["failed"], found["retrying"]
    state = RED if failed_count or found["stuck"] else WARN if retrying_count else OK
    parts = [f"近 24 小时失败 {failed_count} 条"] if failed_count else []
    parts += [f"重试中 {retrying_count} 条"] if retrying_count else []
    return Check(
        kind="deliveries",
        label="Webhook 推送失败",
        state=state,
        count=failed_count + retrying_count,
        detail="，".join(parts) or "没有",
        url=changelist_url(Delivery, status=Delivery.Status.FAILED if failed_count else Delivery.Status.PENDING),
        newest=found["newest"],
    )


@check
def alert_channel(now: datetime) -> Check:
    """The alert channels themselves: configured, and whether the last alert went out. Shown,
    never alerted on (the channel that failed would carry it)."""
    configured = channels.configured()
    url = changelist_url(Alert)
    label = "告警渠道"
    if not configured:
        detail = "未配置（ALERT_WECOM_WEBHOOK、ADMINS）：告警只显示在此面板"
        return Check(kind="alert_channel", label=label, state=WARN, detail=detail, url=url, alert=False)
    last = Alert.objects.exclude(outcome=Alert.Outcome.SENDING).order_by("-created_at", "-pk").first()
    names = "、".join(
        f"{name} {channels.wecom_hint()}" if name == channels.WECOM else f"{name}（{len(settings.ADMINS)} 位管理员）"
        for name in configured
    )
    if last is not None and last.failed:
        detail = f"最近一次告警（{ago(last.created_at, now)}）{last.get_outcome_display()}：{last.error}"
        return Check(
            kind="alert_channel", label=label, state=RED, count=1, detail=detail, url=url, newest=last.created_at, alert=False
        )
    return Check(kind="alert_channel", label=label, state=OK, detail=names, url=url, alert=False)

"""Shared tables, kept in the database so that every app instance agrees: request rate limits,
and the background jobs' heartbeats."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone


class RateLimitWindow(models.Model):
    """How many requests one key (a user, an address, per action) made in one fixed window."""

    key = models.CharField(max_length=200)
    window_start = models.DateTimeField()
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        # Made by the wxrecharge app's first migration; the model moved here, its table stayed.
        db_table = "wxrecharge_ratelimitwindow"
        verbose_name = "请求频率"
        verbose_name_plural = "请求频率"
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="ratelimit_one_row_per_window")]

    def __str__(self) -> str:
        return f"{self.key} {self.window_start:%H:%M:%S} {self.hits}"


class Heartbeat(models.Model):
    """The last pass of one looping job (`common.loop.repeat` writes it after each pass), so
    that a job that stopped or keeps failing shows on the admin's health panel (health/).

    One row per job name, whichever copy (server, process) ran the pass: several copies of a
    job may run at once, and the job is alive while any of them passes.
    """

    job = models.CharField("任务", max_length=64, unique=True)
    # Seconds between passes, as the last copy to pass was told (--interval): the panel
    # calls the job silent after three of them.
    interval = models.FloatField("间隔（秒）")
    started_at = models.DateTimeField("最近一次开始", null=True, blank=True)
    finished_at = models.DateTimeField("最近一次结束", null=True, blank=True)
    succeeded_at = models.DateTimeField("最近一次成功", null=True, blank=True)
    failed_at = models.DateTimeField("最近一次出错", null=True, blank=True)
    # Redacted (common.redact) and short: the traceback is in the job's log.
    last_error = models.CharField("最近错误", max_length=300, blank=True)
    host = models.CharField("主机", max_length=64, blank=True)
    pid = models.PositiveIntegerField("进程号", null=True, blank=True)
    # When the job first beat here: a site that has just started gives its other jobs time for
    # a first pass before calling them never run (health/checks.py).
    first_seen_at = models.DateTimeField("首次运行", default=timezone.now, editable=False)

    class Meta:
        verbose_name = "后台任务"
        verbose_name_plural = "后台任务"
        ordering = ["job"]

    def __str__(self) -> str:
        return self.job

    @property
    def last_pass_failed(self) -> bool:
        return self.failed_at is not None and (self.succeeded_at is None or self.failed_at > self.succeeded_at)

    @classmethod
    def record(cls, job: str, interval: float, started_at: datetime, error: str = "") -> None:
        """Record a pass of `job` that started at `started_at` and ended now, successful
        unless `error` (already redacted) says why not."""
        now = timezone.now()
        fields: dict = {
            "interval": interval,
            "started_at": started_at,
            "finished_at": now,
            "host": socket.gethostname()[:64],
            "pid": os.getpid(),
        }
        if error:
            fields.update(failed_at=now, last_error=error[:300])
        else:
            fields["succeeded_at"] = now
        cls._write(job, fields)

    @classmethod
    def claim(cls, job: str, interval: float, now: datetime | None = None) -> bool:
        """Take this `interval`'s turn of `job` (True) unless a pass started less than
        `interval` ago, by this process or any other (False): a compare-and-set on
        `started_at`, so that of several workers only one runs it each interval."""
        now = now or timezone.now()
        fields = {"started_at": now, "interval": interval, "host": socket.gethostname()[:64], "pid": os.getpid()}
        due = models.Q(started_at__isnull=True) | models.Q(started_at__lte=now - timedelta(seconds=interval))
        if cls.objects.filter(due, job=job).update(**fields):
            return True
        if cls.objects.filter(job=job).exists():
            return False
        try:
            with transaction.atomic():
                cls.objects.create(job=job, **fields)
        except IntegrityError:  # another worker made the row first: its turn
            return False
        return True

    @classmethod
    def _write(cls, job: str, fields: dict) -> None:
        if cls.objects.filter(job=job).update(**fields):
            return
        try:
            with transaction.atomic():
                cls.objects.create(job=job, **fields)
        except IntegrityError:  # another copy made the row first
            cls.objects.filter(job=job).update(**fields)

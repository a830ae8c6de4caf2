"""Shared tables: request rate limits (kept in the database, so every app instance agrees)."""

from __future__ import annotations

from django.db import models


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

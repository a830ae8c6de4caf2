"""Recharge offers (充值优惠, docs/packages.md): packages a user picks (首充礼, 充100送20) and
bonus tiers for an amount the user types (满 1000 送 200).

This app only says what is offered, and when. Nothing here moves money: an order records the
package and the bonus promised when it is placed, and counts a user's purchases against
`per_user_limit` (orders).
"""

from __future__ import annotations

from datetime import datetime

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from common.money import format_fen


def short_yuan(fen: int) -> str:
    """Yuan for an offer's label, without ".00": 10000 -> "100", 9990 -> "99.90"."""
    return format_fen(fen).removesuffix(".00")


def _window_ordered(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(active_from__isnull=True) | Q(active_until__isnull=True) | Q(active_until__gt=F("active_from")),
        name=name,
        violation_error_message="结束时间必须晚于开始时间",
    )


class OfferQuerySet(models.QuerySet):
    def on_sale(self, now: datetime | None = None) -> OfferQuerySet:
        """Switched on (上架) and within their time window at `now`: from inclusive, until exclusive."""
        now = now or timezone.now()
        return self.filter(
            Q(active_from__isnull=True) | Q(active_from__lte=now),
            Q(active_until__isnull=True) | Q(active_until__gt=now),
            is_active=True,
        )


class BaseOffer(models.Model):
    """What a package and a tier share: how long their bonus lasts, when they are offered, 上架."""

    class Status(models.TextChoices):
        ON_SALE = "on_sale", "在售"
        NOT_STARTED = "not_started", "未开始"
        ENDED = "ended", "已结束"
        OFF = "off", "已下架"

    bonus_valid_days = models.PositiveSmallIntegerField(
        "赠送有效期（天）",
        null=True,
        blank=True,
        validators=[MinValueValidator(1, "有效期至少 1 天")],
        help_text="赠送金额自支付起多少天内有效；留空表示永不过期。充值的本金永不过期。",
    )
    active_from = models.DateTimeField("开始时间", null=True, blank=True, help_text="留空表示立即开始")
    active_until = models.DateTimeField("结束时间", null=True, blank=True, help_text="留空表示长期有效")
    is_active = models.BooleanField("上架", default=True, help_text="取消勾选即下架，用户不再看到")
    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)
    updated_at = models.DateTimeField("修改时间", auto_now=True)

    objects = OfferQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def on_sale(cls, now: datetime | None = None) -> OfferQuerySet:
        """Those a user may take at `now`, in the model's order (packages: 排序, then price)."""
        return cls.objects.on_sale(now)

    def status(self, now: datetime | None = None) -> BaseOffer.Status:
        """Switched off first (an operator's word wins), then the time window."""
        now = now or timezone.now()
        if not self.is_active:
            return self.Status.OFF
        if self.active_from is not None and now < self.active_from:
            return self.Status.NOT_STARTED
        if self.active_until is not None and now >= self.active_until:
            return self.Status.ENDED
        return self.Status.ON_SALE

    def is_on_sale(self, now: datetime | None = None) -> bool:
        """Whether a user may take it at `now` (the same rule as `on_sale`)."""
        return self.status(now) == self.Status.ON_SALE

    @property
    def status_text(self) -> str:
        """在售, 未开始, 已结束 or 已下架, now."""
        return self.status().label


class Package(BaseOffer):
    """A fixed amount the user picks on the recharge page, with the bonus it brings."""

    name = models.CharField("名称", max_length=40, help_text="用户看到的名字，如「首充礼」「充100送20」")
    price = models.PositiveBigIntegerField("充值金额")
    bonus = models.PositiveBigIntegerField("赠送金额", default=0)
    per_user_limit = models.PositiveSmallIntegerField(
        "每人限购次数",
        null=True,
        blank=True,
        validators=[MinValueValidator(1, "限购次数至少为 1")],
        help_text="留空表示不限；首充礼填 1",
    )
    position = models.SmallIntegerField("排序", default=0, help_text="数字小的排在前面")

    class Meta:
        verbose_name = "充值套餐"
        verbose_name_plural = "充值套餐"
        ordering = ["position", "price", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="package_price_positive"),
            _window_ordered("package_window_ordered"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        """充 100 送 20 with a bonus, else ¥100."""
        if self.bonus:
            return f"充 {short_yuan(self.price)} 送 {short_yuan(self.bonus)}"
        return f"¥{short_yuan(self.price)}"

    def to_dict(self) -> dict:
        """The one JSON shape of a package (the mini program's recharge page)."""
        return {
            "id": self.pk,
            "name": self.name,
            "price_fen": self.price,
            "bonus_fen": self.bonus,
            "bonus_valid_days": self.bonus_valid_days,
            "per_user_limit": self.per_user_limit,
            "label": self.label,
        }


class BonusTier(BaseOffer):
    """A bonus for an amount the user types: reaching `threshold` brings `bonus` (满 1000 送 200)."""

    threshold = models.PositiveBigIntegerField("满", help_text="单笔充值达到此金额即赠送")
    bonus = models.PositiveBigIntegerField("送")

    class Meta:
        verbose_name = "满额赠送"
        verbose_name_plural = "满额赠送"
        ordering = ["threshold", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(threshold__gt=0), name="bonustier_threshold_positive"),
            models.CheckConstraint(condition=Q(bonus__gt=0), name="bonustier_bonus_positive"),
            _window_ordered("bonustier_window_ordered"),
        ]

    def __str__(self) -> str:
        return self.label

    @classmethod
    def best_for(cls, amount_fen: int, now: datetime | None = None) -> BonusTier | None:
        """The tier an amount earns at `now`: the highest threshold it reaches (on a tie, the
        larger bonus); None when it reaches none."""
        return cls.objects.on_sale(now).filter(threshold__lte=amount_fen).order_by("-threshold", "-bonus", "pk").first()

    @property
    def label(self) -> str:
        return f"满 {short_yuan(self.threshold)} 送 {short_yuan(self.bonus)}"

"""Operators' pages for recharge offers: packages and bonus tiers. Operators type amounts in
yuan ("100", "99.90"); they are stored in fen and shown in yuan again when edited."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError

from common.admin import when
from common.money import parse_yuan, yuan
from offers.models import BaseOffer, BonusTier, Package, short_yuan


class YuanField(forms.Field):
    """An amount typed in yuan, cleaned to integer fen; an amount in fen is shown in yuan."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "size": 12})
    default_error_messages = {
        "required": "请填写金额",
        "invalid": "请输入金额（元），如 100 或 99.90，最多两位小数",
        "not_positive": "金额必须大于 0",
    }

    def __init__(self, *, positive: bool = True, empty_value: int | None = None, **kwargs) -> None:
        self.positive = positive
        self.empty_value = empty_value
        super().__init__(**kwargs)

    def prepare_value(self, value):
        # The initial value is the model's fen; a value sent back is the operator's text.
        return short_yuan(value) if isinstance(value, int) else value

    def to_python(self, value) -> int | None:
        if value in self.empty_values:
            return self.empty_value
        fen = parse_yuan(value)
        if fen is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return fen

    def validate(self, value) -> None:
        super().validate(value)
        if self.positive and value is not None and value <= 0:
            raise ValidationError(self.error_messages["not_positive"], code="not_positive")


def validity_text(offer: BaseOffer) -> str:
    return f"{offer.bonus_valid_days} 天" if offer.bonus_valid_days is not None else "永久"


class _OfferAdmin(admin.ModelAdmin):
    """What both lists show: the time window and the status, filtered by 上架."""

    list_filter = ("is_active",)
    readonly_fields = ("created_at", "updated_at")

    def get_fieldsets(self, request, obj=None):
        # Its creation and last change, once there is one.
        record = ("记录", {"fields": ("created_at", "updated_at")})
        return [*super().get_fieldsets(request, obj), *([record] if obj is not None else [])]

    @admin.display(description="活动时间", ordering="active_from")
    def window(self, obj: BaseOffer) -> str:
        start, end = obj.active_from, obj.active_until
        if start and end:
            return f"{when(start)} 至 {when(end)}"
        if start:
            return f"{when(start)} 起"
        return f"至 {when(end)}" if end else "长期"

    @admin.display(description="状态")
    def status_display(self, obj: BaseOffer) -> str:
        return obj.status_text


class PackageForm(forms.ModelForm):
    price = YuanField(label="充值金额（元）", help_text="用户支付的金额，如 100 或 99.90")
    bonus = YuanField(
        label="赠送金额（元）", required=False, positive=False, empty_value=0, help_text="随充值赠送的金额；留空或 0 表示不赠送"
    )

    class Meta:
        model = Package
        fields = (
            "name",
            "price",
            "bonus",
            "bonus_valid_days",
            "per_user_limit",
            "active_from",
            "active_until",
            "position",
            "is_active",
        )

    def clean_price(self) -> int:
        price = self.cleaned_data["price"]
        low, high = settings.RECHARGE_MIN_FEN, settings.RECHARGE_MAX_FEN
        if not low <= price <= high:
            raise ValidationError(f"充值金额须在 {yuan(low)} 至 {yuan(high)} 之间（单笔充值的限额）")
        return price


@admin.register(Package)
class PackageAdmin(_OfferAdmin):
    form = PackageForm
    list_display = (
        "name",
        "shown_as",
        "price_display",
        "bonus_display",
        "validity",
        "limit",
        "window",
        "position",
        "is_active",
        "status_display",
    )
    list_editable = ("position", "is_active")
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "price", "bonus", "bonus_valid_days")}),
        ("上架时间与限购", {"fields": ("is_active", "active_from", "active_until", "per_user_limit", "position")}),
    )

    @admin.display(description="充值金额", ordering="price")
    def price_display(self, obj: Package) -> str:
        return yuan(obj.price)

    @admin.display(description="赠送金额", ordering="bonus")
    def bonus_display(self, obj: Package) -> str:
        return yuan(obj.bonus) if obj.bonus else "-"

    @admin.display(description="每人限购")
    def limit(self, obj: Package) -> str:
        return f"{obj.per_user_limit} 次" if obj.per_user_limit is not None else "不限"

    @admin.display(description="赠送有效期")
    def validity(self, obj: Package) -> str:
        return validity_text(obj) if obj.bonus else "-"

    @admin.display(description="显示为")
    def shown_as(self, obj: Package) -> str:
        return obj.label


class BonusTierForm(forms.ModelForm):
    threshold = YuanField(label="满（元）", help_text="单笔充值达到此金额即赠送，如 1000")
    bonus = YuanField(label="送（元）", help_text="赠送的金额，如 200")

    class Meta:
        model = BonusTier
        fields = ("threshold", "bonus", "bonus_valid_days", "active_from", "active_until", "is_active")

    def clean_threshold(self) -> int:
        threshold = self.cleaned_data["threshold"]
        if threshold > settings.RECHARGE_MAX_FEN:
            raise ValidationError(f"满额不能超过单笔充值上限 {yuan(settings.RECHARGE_MAX_FEN)}，否则没有订单能达到")
        return threshold


@admin.register(BonusTier)
class BonusTierAdmin(_OfferAdmin):
    form = BonusTierForm
    list_display = ("label", "threshold_display", "bonus_display", "validity", "window", "is_active", "status_display")
    list_editable = ("is_active",)
    fieldsets = (
        (None, {"fields": ("threshold", "bonus", "bonus_valid_days")}),
        ("上架时间", {"fields": ("is_active", "active_from", "active_until")}),
    )

    @admin.display(description="满额赠送", ordering="threshold")
    def label(self, obj: BonusTier) -> str:
        return obj.label

    @admin.display(description="赠送有效期")
    def validity(self, obj: BonusTier) -> str:
        return validity_text(obj)

    @admin.display(description="满", ordering="threshold")
    def threshold_display(self, obj: BonusTier) -> str:
        return yuan(obj.threshold)

    @admin.display(description="送", ordering="bonus")
    def bonus_display(self, obj: BonusTier) -> str:
        return yuan(obj.bonus)

"""Operators' pages for the books (docs/product.md#8-operators): the ledger, and users with
their balances (orders/user_admin.py). Orders and refunds, whose actions are payment
flows, are payments/order_admin.py.

Nothing here edits a record: the ledger changes only through LedgerEntry.post (a balance
adjustment is a ledger row with its reason and operator).
"""

from __future__ import annotations

from django.contrib import admin

from audit.export import ExportMixin
from common.admin import ReadOnlyAdmin, ReadOnlyInline, link, when
from common.admin_filters import DateRangeFilter
from common.money import format_fen, yuan
from orders import user_admin  # noqa: F401 (registers the users' admin)
from orders.models import LedgerEntry, Lot, LotMove

# -- the ledger --------------------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ExportMixin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "user",
        "kind",
        "amount_display",
        "balance_after_display",
        "order",
        "refund",
        "operator",
        "reason",
    )
    list_filter = ("kind", ("created_at", DateRangeFilter))
    exact_search_fields = ("user__username", "order__out_trade_no")
    list_select_related = ("user", "order", "refund", "operator")
    change_list_template = "admin/export_change_list.html"
    export_name = "ledger"
    # A spend's and a reversal's own numbers and store come with their rows (one join each).
    export_columns = [
        ("时间", lambda e: e.created_at),
        ("用户", lambda e: e.user.username),
        ("类型", lambda e: e.get_kind_display()),
        ("金额（元）", lambda e: format_fen(e.amount)),
        ("变动后余额（元）", lambda e: format_fen(e.balance_after)),
        ("充值订单", lambda e: e.order.out_trade_no if e.order else ""),
        ("退款单", lambda e: e.refund.out_refund_no if e.refund else ""),
        ("消费单号", lambda e: getattr(getattr(e, "charge", None), "number", "")),
        ("门店", lambda e: getattr(getattr(e, "charge", None), "store", "")),
        ("撤销单号", lambda e: getattr(getattr(e, "reversal", None), "number", "")),
        ("操作人", lambda e: e.operator.get_username() if e.operator else ""),
        ("说明", lambda e: e.reason),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("charge", "reversal")

    fields = (
        "created_at",
        "user_link",
        "kind",
        "amount_display",
        "balance_after_display",
        "order_link",
        "refund_link",
        "operator",
        "reason",
    )
    readonly_fields = fields

    @admin.display(description="变动", ordering="amount")
    def amount_display(self, obj: LedgerEntry) -> str:
        return yuan(obj.amount)

    @admin.display(description="变动后余额")
    def balance_after_display(self, obj: LedgerEntry) -> str:
        return yuan(obj.balance_after)

    @admin.display(description="用户")
    def user_link(self, obj: LedgerEntry) -> str:
        return link(obj.user, obj.user.username)

    @admin.display(description="订单")
    def order_link(self, obj: LedgerEntry) -> str:
        return link(obj.order)

    @admin.display(description="退款")
    def refund_link(self, obj: LedgerEntry) -> str:
        return link(obj.refund)


# -- lots of stored value ------------------------------------------------------------------------


class LotMoveInline(ReadOnlyInline):
    model = LotMove
    fields = ("entry_link", "kind", "paid_display", "bonus_display", "when")
    readonly_fields = fields
    verbose_name_plural = "变动（每条余额流水在本批次的份额）"

    @admin.display(description="余额流水")
    def entry_link(self, obj: LotMove) -> str:
        return link(obj.entry, f"#{obj.entry_id}")

    @admin.display(description="类型")
    def kind(self, obj: LotMove) -> str:
        return obj.entry.get_kind_display()

    @admin.display(description="本金")
    def paid_display(self, obj: LotMove) -> str:
        return yuan(obj.paid)

    @admin.display(description="赠送")
    def bonus_display(self, obj: LotMove) -> str:
        return yuan(obj.bonus)

    @admin.display(description="时间")
    def when(self, obj: LotMove) -> str:
        return when(obj.entry.created_at)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("entry").order_by("entry__created_at", "pk")


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    """Each credit of stored value and what is left of it (docs/stored-value.md#lots)."""

    list_display = (
        "number",
        "user",
        "order",
        "paid_display",
        "bonus_display",
        "paid_left_display",
        "bonus_left_display",
        "expires",
    )
    exact_search_fields = ("user__username", "order__out_trade_no")
    list_select_related = ("user", "order")
    fields = (
        "user_link",
        "order_link",
        "paid_display",
        "bonus_display",
        "paid_left_display",
        "bonus_left_display",
        "expires",
        "created_at",
    )
    readonly_fields = fields
    inlines = [LotMoveInline]

    @admin.display(description="批次号", ordering="pk")
    def number(self, obj: Lot) -> int:
        return obj.pk

    @admin.display(description="用户")
    def user_link(self, obj: Lot) -> str:
        return link(obj.user, obj.user.username)

    @admin.display(description="充值订单", empty_value="运营调增（赠送）")
    def order_link(self, obj: Lot) -> str:
        return link(obj.order) if obj.order_id else ""

    @admin.display(description="本金")
    def paid_display(self, obj: Lot) -> str:
        return yuan(obj.paid)

    @admin.display(description="赠送")
    def bonus_display(self, obj: Lot) -> str:
        return yuan(obj.bonus)

    @admin.display(description="剩余本金", ordering="paid_left")
    def paid_left_display(self, obj: Lot) -> str:
        return yuan(obj.paid_left)

    @admin.display(description="剩余赠送", ordering="bonus_left")
    def bonus_left_display(self, obj: Lot) -> str:
        return yuan(obj.bonus_left)

    @admin.display(description="赠送到期", ordering="bonus_expires_at", empty_value="不过期")
    def expires(self, obj: Lot) -> str:
        return when(obj.bonus_expires_at) if obj.bonus_expires_at else ""

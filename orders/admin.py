"""Operators' pages for the books (docs/product.md#8-operators): the ledger, and users with
their balances (orders/user_admin.py). Orders and refunds, whose actions are payment
flows, are payments/order_admin.py.

Nothing here edits a record: the ledger changes only through LedgerEntry.post (a balance
adjustment is a ledger row with its reason and operator).
"""

from __future__ import annotations

from django.contrib import admin

from common.admin import ReadOnlyAdmin, link
from common.money import yuan
from orders import user_admin  # noqa: F401 (registers the users' admin)
from orders.models import LedgerEntry

# -- the ledger --------------------------------------------------------------------------------


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
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
    list_filter = ("kind",)
    exact_search_fields = ("user__username", "order__out_trade_no")
    list_select_related = ("user", "order", "refund", "operator")
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

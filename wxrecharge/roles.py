"""The operators' roles (docs/operations.md#角色): 客服, 财务 and 管理员, as Django groups whose
permissions are set here and put back in step after every migrate (a permission added by a
later version reaches its role; one an operator added by hand to a role's group is taken away:
give it to the person instead). Give staff a role, not single permissions.

- 客服 (support) sees members, their orders, statements, refunds, refund requests, spends and
  messages, and unbinds a WeChat; no refund, adjustment or export.
- 财务 (finance) also refunds, adjusts balances, approves refund requests, reverses spends,
  settles incidents, reprocesses notifies, reconciles and exports, and reads the audit log.
- 管理员 has every permission of the site's own apps (not the sandbox's), and manages staff
  accounts and roles; only superusers are above it.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS

SUPPORT = "客服"
FINANCE = "财务"
ADMINISTRATOR = "管理员"

_SUPPORT = {
    "accounts.view_user",
    "accounts.unbind_wechat",
    "accounts.view_wechatunbinding",
    "orders.view_rechargeorder",
    "orders.view_refund",
    "orders.view_ledgerentry",
    "orders.view_lot",
    "payments.view_refundrequest",
    "payments.view_incident",
    "payments.view_notification",
    "wallet.view_charge",
    "wallet.view_reversal",
    "messaging.view_message",
    "messaging.view_subscribegrant",
    "offers.view_package",
    "offers.view_bonustier",
}
_FINANCE = (_SUPPORT - {"accounts.unbind_wechat"}) | {
    "orders.refund_rechargeorder",
    "orders.sync_rechargeorder",
    "accounts.change_user",  # 调整余额
    "payments.decide_refundrequest",
    "payments.change_incident",  # 标记为已处理
    "payments.change_notification",  # 重新处理
    "wallet.reverse_charge",
    "reconciliation.view_billday",
    "reconciliation.view_billrow",
    "reconciliation.view_difference",
    "reconciliation.run_billday",
    "reconciliation.view_liability",
    "audit.view_auditentry",
    "audit.export_data",
    "health.view_health",
}
# 管理员: every permission of these apps, and of staff accounts and roles.
_ADMINISTRATOR_APPS = [
    "accounts",
    "audit",
    "common",
    "health",
    "messaging",
    "offers",
    "orders",
    "outbox",
    "payments",
    "reconciliation",
    "wallet",
]
_ADMINISTRATOR_EXTRA = {"auth.view_group", "auth.change_group", "auth.add_group", "auth.view_permission"}

ROLES = {SUPPORT: _SUPPORT, FINANCE: _FINANCE}


def permissions(names: set[str]) -> list[Permission]:
    found = []
    for name in sorted(names):
        app_label, codename = name.split(".")
        found.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    return found


def sync_roles(sender=None, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Make each role's group hold exactly its permissions: by post_migrate, once, on the last
    app's signal (every app's permissions exist by then); also callable by hand."""
    if sender is not None and sender is not list(apps.get_app_configs())[-1]:
        return
    for name, names in ROLES.items():
        group, _ = Group.objects.using(using).get_or_create(name=name)
        group.permissions.set(permissions(names))
    everything = Permission.objects.filter(content_type__app_label__in=_ADMINISTRATOR_APPS)
    group, _ = Group.objects.using(using).get_or_create(name=ADMINISTRATOR)
    group.permissions.set([*everything, *permissions(_ADMINISTRATOR_EXTRA)])

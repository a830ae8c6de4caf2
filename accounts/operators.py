"""Which operators must pass a second factor (docs/operations.md#两步验证): those who can move
money or act on members' behalf. The admin site (wxrecharge/admin.py) asks them for a code from
their authenticator app after the password, before any admin page."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

# Holding any of these (directly or through a role), or being a superuser, means a second factor.
# A permission not (yet) defined is simply never held (`has_perm` answers False).
MONEY_PERMISSIONS = [
    "orders.refund_rechargeorder",  # 退款, 记录线下退款
    "orders.sync_rechargeorder",  # 向微信查询并同步、关闭订单
    "accounts.change_user",  # 调整余额 (and every other change to a user, permissions included)
    "accounts.unbind_wechat",
    "payments.decide_refundrequest",  # 审核退款申请
    "wallet.reverse_charge",  # 撤销消费
    "wallet.add_apiclient",  # an API client's key charges members' balances
    "wallet.change_apiclient",  # ... and rolling it shows a new one
    "reconciliation.run_billday",  # 重新对账
    "messaging.resend_message",
    "outbox.resend_delivery",
    "audit.export_data",  # 导出数据 (members' data leaves the building)
]


def needs_second_factor(user) -> bool:
    """Whether `user` must enrol and pass a second factor to use the admin."""
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or any(user.has_perm(perm) for perm in MONEY_PERMISSIONS)


def second_factor_pending(request: HttpRequest) -> bool:
    """An active staff member signed in with a password who must still pass the second factor
    in this session (OPERATOR_2FA_REQUIRED on). `is_verified` comes from django-otp's
    middleware: without it, nobody counts as verified."""
    user = request.user
    if not (settings.OPERATOR_2FA_REQUIRED and user.is_active and user.is_staff):
        return False
    verified = getattr(user, "is_verified", None)
    return not (verified is not None and verified()) and needs_second_factor(user)

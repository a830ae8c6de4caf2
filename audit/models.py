"""The operators' audit log (docs/operations.md#操作审计): one row per action that changes, or
may change, money or state, written by the action itself (`audit.log.record`), never edited
or deleted.

Our own model rather than a model-history library (django-simple-history, django-auditlog):
what is recorded is an operator's verb with its reason (退款, 关闭订单, 重新对账 …), not a diff
of a model's fields, and the money paths write through compiled statements that model signals
never see; a history table on the books would also add writes to every notify.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# What an operator did, by code: the Chinese is what the log shows.
ACTIONS = {
    "signin": "登录后台",
    "signin_failed": "登录失败",
    "otp_failed": "两步验证失败",
    "otp_enrolled": "启用两步验证",
    "otp_recovery_used": "使用恢复码",
    "order.refund": "发起退款",
    "order.close": "关闭订单",
    "order.sync": "向微信查询订单",
    "order.settle_taken": "按微信实收处理订单",
    "refund.sync": "向微信查询退款",
    "refund.payout": "记录线下退款",
    "balance.adjust": "调整余额",
    "charge.reverse": "撤销消费",
    "notify.reprocess": "重新处理通知",
    "incident.resolve": "处理异常",
    "bill.rerun": "重新对账",
    "refund_request.approve": "批准退款申请",
    "refund_request.decline": "拒绝退款申请",
    "user.unbind": "解绑微信",
    "user.change": "修改用户",
    "user.permissions": "修改用户权限或角色",
    "group.permissions": "修改角色权限",
    "api_client.change": "修改 API 客户端",
    "webhook.change": "修改 Webhook 地址",
    "message.resend": "重新发送消息",
    "delivery.resend": "重新发送 Webhook",
    "export": "导出数据",
}


class AuditEntry(models.Model):
    at = models.DateTimeField("时间", default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name="操作人"
    )
    # Kept as written: the log still says who it was after the account is renamed or removed.
    actor_name = models.CharField("操作人账号", max_length=150, blank=True)
    address = models.GenericIPAddressField("来源地址", null=True, blank=True)
    action = models.CharField("操作", max_length=40, choices=list(ACTIONS.items()), db_index=True)
    object_type = models.CharField("对象类型", max_length=100, blank=True)
    object_id = models.CharField("对象 ID", max_length=64, blank=True, db_index=True)
    object_repr = models.CharField("对象", max_length=200, blank=True)
    # {"名称": {"from": before, "to": after}}, a list of names, or a figure (audit.log.record).
    changes = models.JSONField("变更", default=dict, blank=True)
    reason = models.CharField("原因", max_length=500, blank=True)

    class Meta:
        verbose_name = "审计记录"
        verbose_name_plural = "审计记录"
        ordering = ["-at", "-pk"]
        default_permissions = ("view",)
        # Exports (of orders, refunds, the ledger …) are audited here too; the permission lives here.
        permissions = [("export_data", "可以导出数据")]
        indexes = [models.Index(fields=["object_type", "object_id", "at"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.actor_name or '系统'} {self.get_action_display()} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("审计记录只能追加，不能修改")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("审计记录不能删除")

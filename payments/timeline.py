"""An order's story for its admin page (订单经过): what happened to it, in time order, from what
the books, the notification log, the audit log and the reconciliation already hold; nothing
is written for it.

Placed; WeChat's prepay; each notify with its outcome; each query, close, refund, sync and
reprocess an operator made (the audit log: who, and why); paid and credited; each refund and
how it ended; each incident and how it was resolved; each reconciliation finding; the
mini-program shipping record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from audit import log as audit
from common.admin import change_url
from common.money import yuan
from orders.models import RechargeOrder
from payments.models import Incident, Notification


@dataclass(frozen=True)
class Step:
    at: datetime
    what: str
    detail: str = ""
    url: str = ""
    who: str = ""  # the operator, for their own actions
    warn: bool = False  # something went wrong here


def timeline(order: RechargeOrder, viewer) -> list[Step]:
    """The order's steps, oldest first, as `viewer` may see them: a record is linked only for
    those who may open it, and the reconciliation's findings only shown to those who may see
    the reconciliation."""

    def url(obj) -> str:
        meta = obj._meta
        return change_url(obj) if viewer.has_perm(f"{meta.app_label}.view_{meta.model_name}") else ""

    steps = [Step(order.created_at, "下单", f"{order.get_trade_type_display()}，{yuan(order.amount)}，openid {order.openid}")]
    if order.prepay_id or order.pay_url:
        steps.append(Step(order.created_at, "微信预支付", order.prepay_id or "支付链接已生成"))
    if order.close_reason == RechargeOrder.CloseReason.REFUSED:
        steps.append(Step(order.updated_at, "微信拒绝下单", order.prepay_error, warn=True))
    notifications = Notification.objects.filter(out_trade_no=order.out_trade_no).order_by("received_at", "pk")
    for n in notifications:
        warn = n.outcome in (Notification.Outcome.REJECTED, Notification.Outcome.ERROR, Notification.Outcome.INCIDENT)
        label = f"{n.get_kind_display()}：{n.get_outcome_display()}"
        steps.append(Step(n.received_at, label, n.detail[:120], url(n), warn=warn))
    if order.paid_at:
        steps.append(Step(order.paid_at, "已支付", f"微信支付单号 {order.transaction_id}"))
    for entry in order.ledger_entries.order_by("created_at", "pk"):
        sign = "+" if entry.amount > 0 else ""
        steps.append(
            Step(
                entry.created_at,
                f"余额{entry.get_kind_display()}",
                f"{sign}{yuan(entry.amount)}，余额 {yuan(entry.balance_after)}",
            )
        )
    for refund in order.refunds.select_related("requested_by").order_by("created_at", "pk"):
        by = refund.requested_by.get_username() if refund.requested_by else ""
        steps.append(
            Step(
                refund.created_at,
                "发起退款",
                f"{refund.out_refund_no}，{yuan(refund.amount)}，{refund.reason}",
                url(refund),
                by,
            )
        )
        if refund.settled_at:
            failed = refund.status != refund.Status.SUCCESS
            # The status names the refund already (退款成功, 退款关闭, 退款失败).
            steps.append(Step(refund.settled_at, refund.get_status_display(), refund.out_refund_no, url(refund), warn=failed))
    for incident in Incident.objects.filter(order=order).select_related("resolved_by").order_by("created_at", "pk"):
        steps.append(
            Step(
                incident.created_at,
                f"异常：{incident.get_kind_display()}",
                incident.message[:120],
                url(incident),
                warn=True,
            )
        )
        if incident.resolved_at:
            by = incident.resolved_by.get_username() if incident.resolved_by else ""
            steps.append(Step(incident.resolved_at, "异常已处理", incident.resolution, url(incident), by))
    differences = order.bill_differences.select_related("bill_day").order_by("bill_day__date", "pk")
    for difference in differences if viewer.has_perm("reconciliation.view_billday") else []:
        day = difference.bill_day
        label = f"对账 {day.date.isoformat()}：{difference.get_kind_display()}"
        steps.append(Step(difference.created_at, label, difference.get_outcome_display(), url(day), warn=True))
    for record in order.shipping_records.all():
        state = record.get_status_display()
        steps.append(Step(record.sent_at or record.created_at, f"发货信息：{state}", record.last_error, url(record)))
    # A refund's own row tells who asked for it and why: its audit row would say it again.
    for row in audit.history(order).exclude(action="order.refund"):
        detail = "；".join(f"{k}：{audit.describe(v)}" for k, v in row.changes.items())
        steps.append(
            Step(row.at, row.get_action_display(), f"{detail}{'。原因：' + row.reason if row.reason else ''}", who=row.actor_name)
        )
    return sorted(steps, key=lambda step: step.at)

"""The messages' rows on the health panel (common/health.py): WeChat messages and shipping
records that failed, or are still being retried after errors."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max, Q

from common.admin import changelist_url
from common.health import OK, RED, WARN, Check, check
from messaging.models import Channel, Message

WINDOW = timedelta(hours=24)
# A message still retrying after this many attempts is shown red (it has been failing for minutes).
RED_AFTER_ATTEMPTS = 3


@check
def failing_messages(now: datetime) -> list[Check]:
    rows = []
    for kind, label, channels in (
        ("messages", "微信消息发送失败", [Channel.OFFICIAL, Channel.MINIPROGRAM]),
        ("shipping", "小程序发货信息上传失败", [Channel.SHIPPING]),
    ):
        failing = Message.objects.filter(channel__in=channels).filter(
            Q(status=Message.Status.FAILED, last_attempt_at__gte=now - WINDOW) | Q(status=Message.Status.PENDING, attempts__gt=0)
        )
        found = failing.aggregate(
            failed=Max("pk", filter=Q(status=Message.Status.FAILED)),
            stuck=Max("attempts", filter=Q(status=Message.Status.PENDING)),
            newest=Max("last_attempt_at"),
        )
        count = failing.count()
        state = OK
        if found["failed"] is not None or (found["stuck"] or 0) >= RED_AFTER_ATTEMPTS:
            state = RED
        elif count:
            state = WARN
        last = failing.exclude(last_errcode=None).order_by("-last_attempt_at").values_list("last_errcode", "last_error").first()
        detail = f"失败（近 24 小时）或重试中 {count} 条；最近错误 {last[0]} {last[1]}"[:120] if count and last else "正常"
        url = (
            changelist_url(Message, attention="1", channel__exact=channels[0])
            if len(channels) == 1
            else changelist_url(Message, attention="1")
        )
        rows.append(Check(kind=kind, label=label, state=state, count=count, detail=detail, url=url, newest=found["newest"]))
    return rows

"""From the outbox's events to the messages they make (docs/messages.md#what-is-sent): run by
the outbox's worker inside the transaction that dispatches a batch of events, so an event makes
its messages once, together with being marked dispatched.

- A 公众号 template message when the operator has set a template for the kind, to the member's
  公众号 openid; without one it is recorded as skipped.
- A mini-program subscribe message when a template is set and the member signed in through the
  mini program: it takes one of the member's grants for that template (SubscribeGrant.take),
  and without one it is recorded as skipped.
- A member who turned messages off gets none: each is recorded as skipped.
- A shipping record (发货信息) for each mini-program payment credited, whatever the member chose.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from accounts.models import User
from common.money import format_fen
from messaging.models import EVENT_KINDS, Channel, Kind, Message, MessageTemplate, SubscribeGrant
from orders.models import RechargeOrder
from outbox.models import Event
from wxproto.beijing import BEIJING

# What WeChat's typed keywords take at most (characters), by the keyword's type (its name
# without the number); longer values are cut, where WeChat would refuse the whole message (47003).
LIMITS = {"thing": 20, "character_string": 32, "phrase": 5, "name": 10, "letter": 32, "symbol": 5, "car_number": 8}
# A shipping record's description of the goods (WeChat: at most 120 characters).
ITEM_DESC_LIMIT = 120

logger = logging.getLogger(__name__)

SKIPPED_OFF = "用户已关闭微信消息通知"
SKIPPED_NO_OPENID = "用户没有公众号 openid（未在公众号内登录过）"
SKIPPED_NO_GRANT = "用户没有这个模板的订阅授权（需在小程序内同意接收）"


def fan_out(events: list[Event]) -> None:
    """Make the messages of a batch of newly dispatched events (the outbox worker calls it)."""
    told = [event for event in events if event.type in EVENT_KINDS and isinstance(event.data, dict)]
    if not told:
        return
    templates = {(t.channel, t.kind): t for t in MessageTemplate.objects.filter(is_active=True)}
    users = User.objects.in_bulk({event.data.get("member_id") for event in told} - {None})
    payments = _mini_program_payments([event for event in told if event.type == "recharge.succeeded"])
    messages: list[Message] = []
    for event in told:
        user = users.get(event.data.get("member_id"))
        if user is None:
            continue
        kind = EVENT_KINDS[event.type]
        for channel in (Channel.OFFICIAL, Channel.MINIPROGRAM):
            template = templates.get((channel, kind))
            if template is None:
                continue
            try:
                message = _message(event, kind, user, template)
            except Exception as exc:  # never stop the worker's dispatch: this message fails, on the record
                logger.exception("the %s message of event %s could not be made", channel, event.event_id)
                message = _unsent(event, kind, user, template, "", Message.Status.FAILED, f"无法按模板生成消息：{exc}")
            if message is not None:
                messages.append(message)
        order = payments.get(event.data.get("order", ""))
        if order is not None:
            messages.append(shipping_record(order, event))
    Message.objects.bulk_create(messages, ignore_conflicts=True)


def _mini_program_payments(events: list[Event]) -> dict[str, RechargeOrder]:
    if not settings.WECHAT_SHIPPING_UPLOAD or not events:
        return {}
    numbers = [event.data.get("order", "") for event in events]
    orders = RechargeOrder.objects.filter(
        out_trade_no__in=numbers, channel=RechargeOrder.Channel.MINIPROGRAM, transaction_id__isnull=False
    )
    return {order.out_trade_no: order for order in orders}


def _message(event: Event, kind: str, user: User, template: MessageTemplate) -> Message | None:
    channel = template.channel
    openid = user.openid if channel == Channel.OFFICIAL else user.miniprogram_openid
    if channel == Channel.MINIPROGRAM and not openid:
        return None  # not a mini-program user: nothing to record
    openid = openid or ""
    skipped = SKIPPED_OFF if not user.wechat_messages else SKIPPED_NO_OPENID if not openid else ""
    if skipped:
        return _unsent(event, kind, user, template, openid, Message.Status.SKIPPED, skipped)
    # Filled before a grant is taken: a template that cannot be filled uses none.
    values = field_values(kind, event)
    data = {name: {"value": fit(name, text.format(**values))} for name, text in template.keywords.items()}
    page = template.page.format(**values)
    if channel == Channel.MINIPROGRAM and SubscribeGrant.take(user.pk, template.template_id) is None:
        return _unsent(event, kind, user, template, openid, Message.Status.SKIPPED, SKIPPED_NO_GRANT)
    message = _unsent(event, kind, user, template, openid, Message.Status.PENDING, "")
    if channel == Channel.OFFICIAL:
        message.body = {"touser": openid, "template_id": template.template_id, "url": page_url(kind, event), "data": data}
    else:
        message.body = {
            "touser": openid,
            "template_id": template.template_id,
            "data": data,
            "miniprogram_state": settings.MINIPROGRAM_STATE,
            "lang": "zh_CN",
        }
        if page:
            message.body["page"] = page
    return message


def _unsent(event: Event, kind: str, user: User, template: MessageTemplate, openid: str, status: str, why: str) -> Message:
    """The event's message on the template's channel, not sent yet: pending, or ended with `why`."""
    return Message(
        channel=template.channel,
        kind=kind,
        user=user,
        event=event,
        subject=subject_of(event),
        openid=openid,
        template_id=template.template_id,
        next_attempt_at=event.created_at,
        status=status,
        last_error=why[:300],
    )


def shipping_record(order: RechargeOrder, event: Event | None = None) -> Message:
    """The virtual-delivery shipping record of a credited mini-program payment (WeChat's
    upload_shipping_info; its upload_time is added at each attempt)."""
    return Message(
        channel=Channel.SHIPPING,
        kind="shipping",
        user_id=order.user_id,
        event=event,
        order=order,
        subject=order.out_trade_no,
        openid=order.openid,
        body={
            "order_key": {"order_number_type": 2, "transaction_id": order.transaction_id},
            # 3: virtual goods (a stored-value recharge has no parcel); 1: one delivery for the order.
            "logistics_type": 3,
            "delivery_mode": 1,
            "shipping_list": [{"item_desc": f"储值充值 ¥{format_fen(order.amount)}"}],
            "payer": {"openid": order.openid},
        },
    )


def subject_of(event: Event) -> str:
    data = event.data
    return str(data.get("refund") or data.get("reversal") or data.get("order") or data.get("charge") or "")[:64]


def field_values(kind: str, event: Event) -> dict[str, str]:
    """What a template's {names} stand for in this event (every name of the kind: unknown ones
    are refused when the template is saved)."""
    data = event.data
    values = {
        name: str(data.get(name, "")) for name in ("order", "refund", "charge", "reversal", "store", "description", "reason")
    }
    for name in ("amount", "bonus", "balance"):
        if isinstance(data.get(name), int):
            values[name] = "¥" + format_fen(data[name])
        else:
            values[name] = ""
    values["time"] = wechat_time(event.created_at)
    values["expires_on"] = _date_text(data.get("expires_on", ""))
    values["site"] = settings.SITE_NAME
    return values


def fit(keyword: str, value: str) -> str:
    """A value cut to what its keyword's type takes (thing: 20 characters …); an empty one
    becomes "-", since WeChat refuses an empty value."""
    limit = LIMITS.get(re.sub(r"[0-9]+$", "", keyword))
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…" if re.sub(r"[0-9]+$", "", keyword) == "thing" else value[:limit]
    return value or "-"


def wechat_time(moment: datetime) -> str:
    """A time as WeChat's time keywords show it: 2026年12月7日 15:01 (Beijing)."""
    local = moment.astimezone(BEIJING)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _date_text(iso_date: str) -> str:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso_date or "")
    return f"{match[1]}年{int(match[2])}月{int(match[3])}日" if match else ""


def page_url(kind: str, event: Event) -> str:
    """The page a 公众号 message opens: the order's, for a recharge or a refund; else the statement."""
    order = event.data.get("order")
    if kind in (Kind.RECHARGE, Kind.REFUND_SUCCEEDED, Kind.REFUND_FAILED) and order:
        return settings.SITE_URL + reverse("orders:detail", args=[order])
    return settings.SITE_URL + reverse("wallet:statement")

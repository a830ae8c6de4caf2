"""The mini program's side of its messages (docs/messages.md#the-mini-program): which subscribe
templates to ask the member for, the member's answers to wx.requestSubscribeMessage (each
"accept" lets one message be sent), and the member's switch for WeChat messages."""

from __future__ import annotations

from django.db import transaction
from django.views.decorators.http import require_http_methods, require_POST

from accounts.api import bearer_required
from accounts.models import User
from common.api import json_object
from common.http import json_error, json_ok
from messaging.models import Channel, MessageTemplate, SubscribeGrant

# wx.requestSubscribeMessage asks for at most 3 templates at a time; a few calls' answers at once are fine.
MAX_ANSWERS = 20
# Unused accepts kept per template: more are not recorded (the mini program asks too often).
MAX_UNUSED = 50


def subscriptions_state(user: User) -> dict:
    templates = list(MessageTemplate.objects.filter(channel=Channel.MINIPROGRAM, is_active=True).order_by("kind"))
    unused = SubscribeGrant.objects.filter(
        user=user, result=SubscribeGrant.Result.ACCEPT, used_at__isnull=True, template_id__in=[t.template_id for t in templates]
    )
    left: dict[str, int] = {}
    for template_id in unused.values_list("template_id", flat=True):
        left[template_id] = left.get(template_id, 0) + 1
    return {
        "wechat_messages": user.wechat_messages,
        "templates": [
            {
                "kind": t.kind,
                "name": t.get_kind_display(),
                "template_id": t.template_id,
                "title": t.title,
                "grants_left": left.get(t.template_id, 0),
            }
            for t in templates
        ],
    }


@require_http_methods(["GET", "POST"])
@bearer_required
def subscriptions(request):
    """GET: the subscribe templates to ask for (tmplIds for wx.requestSubscribeMessage) and the
    grants the member has left of each. POST: what wx.requestSubscribeMessage resolved with
    ({"errMsg": "requestSubscribeMessage:ok", "<tmplId>": "accept" | "reject" | "ban" | "filter"}),
    recorded; answers the same as GET, with `recorded`."""
    if request.method == "GET":
        return json_ok(subscriptions_state(request.user))
    data = json_object(request)
    if data is None:
        return json_error("invalid_request", 400, "请求体须为 wx.requestSubscribeMessage 返回的 JSON 对象")
    answers = {key: value for key, value in data.items() if key != "errMsg"}
    if not answers or len(answers) > MAX_ANSWERS:
        return json_error("invalid_request", 400, f"须包含 1 至 {MAX_ANSWERS} 个模板的结果")
    if any(not isinstance(value, str) or value not in SubscribeGrant.Result.values for value in answers.values()):
        return json_error("invalid_request", 400, "模板结果须为 accept、reject、ban 或 filter")
    known = set(
        MessageTemplate.objects.filter(channel=Channel.MINIPROGRAM, template_id__in=list(answers)).values_list(
            "template_id", flat=True
        )
    )
    unknown = sorted(set(answers) - known)
    if unknown:
        return json_error("unknown_template", 400, "含有本站未配置的订阅模板", template_ids=unknown)
    recorded = 0
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=request.user.pk).exists()  # one member's posts counted one at a time
        for template_id, result in answers.items():
            if result == SubscribeGrant.Result.ACCEPT:
                unused = SubscribeGrant.objects.filter(
                    user=request.user, template_id=template_id, result=result, used_at__isnull=True
                ).count()
                if unused >= MAX_UNUSED:
                    continue
            SubscribeGrant.objects.create(user=request.user, template_id=template_id, result=result)
            recorded += 1
    return json_ok({**subscriptions_state(request.user), "recorded": recorded})


@require_POST
@bearer_required
def message_settings(request):
    """The member's switch for WeChat messages: {"wechat_messages": true | false}."""
    data = json_object(request)
    wanted = data.get("wechat_messages") if data is not None else None
    if not isinstance(wanted, bool):
        return json_error("invalid_request", 400, "wechat_messages 须为 true 或 false")
    request.user.set_wechat_messages(wanted)
    return json_ok(subscriptions_state(request.user))

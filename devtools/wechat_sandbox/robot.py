"""A 企业微信 group robot (群机器人) that receives the site's alerts, and the page of its group
(docs/wechat-pay-v2.md#56-企业微信群机器人).

What WeCom does, and the sandbox with it: `POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`
with a JSON body `{"msgtype": "text", "text": {"content": …}}` or `{"msgtype": "markdown",
"markdown": {"content": …}}` answers `{"errcode": 0, "errmsg": "ok"}`. Errors, HTTP 200 with an
errcode: 93000 a webhook key it does not know (the sandbox knows any non-empty key), 40008 an
unknown msgtype, 44004 empty content, 40058 content too long (text 2048 bytes, markdown 4096),
45009 more than 20 messages a minute from one robot. The sandbox serves it at `robot/send?key=…`
and at `cgi-bin/webhook/send?key=…` (so that a base-URL swap reaches it), and shows the group at
`robot/`.

Helpers for tests: `robot_messages(key=None)`, `robot_down(down=True)` (the robot answers HTTP 500).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from devtools.wechat_sandbox.messages import rid
from devtools.wechat_sandbox.models import Fault, RobotMessage

PER_MINUTE = 20
# What the sandbox records of each type; WeCom's other types (image, news, file, voice,
# template_card) are accepted and shown as their JSON.
LIMITS = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}
OTHER_TYPES = ("image", "news", "file", "voice", "template_card")
SHOWN = 200


def _error(errcode: int, errmsg: str) -> JsonResponse:
    hint = f"{errmsg}, hint: [{rid()}], more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    return JsonResponse({"errcode": errcode, "errmsg": hint})


def is_down() -> bool:
    return Fault.objects.filter(out_trade_no="", robot_down=True).exists()


def accept(key: str, body: Any) -> JsonResponse:
    """WeCom's checks of one message, then the group shows it."""
    if not key:
        return _error(93000, "invalid webhook url")
    if not isinstance(body, dict):
        return _error(40035, "invalid parameter, Warning: wrong json format")
    msgtype = body.get("msgtype")
    if msgtype not in LIMITS and msgtype not in OTHER_TYPES:
        return _error(40008, "invalid message type")
    part = body.get(msgtype)
    if msgtype in LIMITS:
        content = part.get("content") if isinstance(part, dict) else None
        if not isinstance(content, str) or not content:
            return _error(44004, "empty content")
        if len(content.encode()) > LIMITS[msgtype]:
            return _error(40058, f"{msgtype}.content exceed max length {LIMITS[msgtype]}. invalid Request Parameter")
    else:
        if not isinstance(part, dict) or not part:
            return _error(44004, "empty content")
        content = json.dumps(part, ensure_ascii=False)
    since = timezone.now() - timedelta(minutes=1)
    if RobotMessage.objects.filter(key=key, received_at__gt=since).count() >= PER_MINUTE:
        return _error(45009, "api freq out of limit")
    RobotMessage.objects.create(key=key, msgtype=msgtype, content=content, body=body)
    return JsonResponse({"errcode": 0, "errmsg": "ok"})


@csrf_exempt
@require_POST
def send(request):
    """POST robot/send?key=KEY (and cgi-bin/webhook/send?key=KEY)."""
    if is_down():
        return HttpResponse("<html><body>502 Bad Gateway</body></html>", status=500, content_type="text/html")
    try:
        body = json.loads(request.body or b"")
    except ValueError:
        body = None
    return accept(request.GET.get("key", "").strip(), body)


@require_GET
def group(request):
    """The robot's group chat: each message it accepted, newest first."""
    shown = RobotMessage.objects.order_by("-received_at", "-pk")[:SHOWN]
    return render(request, "sandbox/robot.html", {"robot_messages": shown, "down": is_down()})


@require_POST
def toggle(request):
    robot_down(request.POST.get("down") == "1")
    return redirect("sandbox:robot")


# --- Helpers for tests ----------------------------------------------------------------------------


def robot_messages(key: str | None = None) -> list[dict[str, Any]]:
    """The messages the robot accepted (of one key, if given), newest first: key, msgtype,
    content, body, received_at."""
    found = RobotMessage.objects.order_by("-received_at", "-pk")
    if key is not None:
        found = found.filter(key=key)
    return [
        {"key": m.key, "msgtype": m.msgtype, "content": m.content, "body": m.body, "received_at": m.received_at.isoformat()}
        for m in found
    ]


def robot_down(down: bool = True) -> None:
    """The robot answers HTTP 500 to every send (down) or works again."""
    Fault.objects.update_or_create(out_trade_no="", defaults={"robot_down": down})

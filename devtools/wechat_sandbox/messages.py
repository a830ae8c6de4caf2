"""Messages to users: the 公众号's 模板消息, the mini program's 订阅消息, and the phone that shows them
(docs/wechat-pay-v2.md#54-模板消息订阅消息).

What WeChat does, and the sandbox with it:
- `POST cgi-bin/message/template/send?access_token=…` (the 公众号's token) sends a template message
  to a user who follows the 公众号 (43004 otherwise) and has not turned its messages off (43101).
  `client_msg_id`: the same openid and client_msg_id within 10 minutes sends once and answers the
  first send's msgid.
- `POST cgi-bin/message/subscribe/send?access_token=…` (the mini program's token) needs a grant:
  each accept of wx.requestSubscribeMessage allows one send of that template (43101 without one).
- Both check the token (41001/40001/42001), the openid (40003: one the sandbox has seen only
  under the other app, or not shaped like an openid), the template (40037: not among the app's
  templates of that kind, or deleted by the merchant) and the data (47003: a keyword missing, or
  a value breaking its type's rule, the errmsg naming the field).
- `POST mp/subscribe` plays wx.requestSubscribeMessage: it records the user's choices and answers
  what the call resolves with.
- `GET messages/` is a phone: a sandbox WeChat's template messages, its 服务通知, the grants it has
  left and its switches (follow, messages off); `?format=json` answers messages_for(openid).

Helpers for tests (the product's too): `delete_template(template_id)`, `restore_template(template_id)`,
`set_follow(appid, openid, follows)`, `block_messages(appid, openid, blocked=True)`,
`fail_next_sends(errcode, times=1)`, `subscribe(openid, decisions, appid=None)`,
`grants_left(openid, template_id, appid=None)`, `messages_for(openid)`, `templates_for(appid, kind)`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common.money import format_fen
from devtools.wechat_sandbox import services, template_seeds, tokens
from devtools.wechat_sandbox.models import (
    AppUser,
    AuthCode,
    Fault,
    MessageTemplate,
    SentMessage,
    ShippingOrder,
    SubscribeDecision,
    Trade,
)
from devtools.wechat_sandbox.oauth import BROWSER_COOKIE

DEDUPE_WINDOW = timedelta(minutes=10)
# wx.requestSubscribeMessage takes at most this many template ids in one call (older docs: 3).
SUBSCRIBE_MAX_TEMPLATES = 5
MINIPROGRAM_STATES = ("developer", "trial", "formal")
LANGS = ("zh_CN", "en_US", "zh_HK", "zh_TW")
RECIPIENTS_SHOWN = 12

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40037: "invalid template_id",
    42001: "access_token expired",
    43002: "require POST method",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45009: "reach max api daily quota limit",
    47001: "data format error",
}


class SendError(Exception):
    def __init__(self, errcode: int, errmsg: str | None = None):
        super().__init__(errcode, errmsg)
        self.errcode, self.errmsg = errcode, errmsg or ERRMSG.get(errcode, "system error")


def rid() -> str:
    """WeChat ends each error's errmsg with a request id: callers must not compare errmsg."""
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"


def error_answer(errcode: int, errmsg: str) -> JsonResponse:
    return JsonResponse({"errcode": errcode, "errmsg": f"{errmsg} rid: {rid()}"}, json_dumps_params={"ensure_ascii": False})


def ok_answer(**fields: Any) -> JsonResponse:
    return JsonResponse({"errcode": 0, "errmsg": "ok", **fields})


def read_json(request) -> dict:
    """The posted JSON object, or WeChat's 47001 (data format error)."""
    try:
        data = json.loads(request.body or b"")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SendError(47001)
    return data


def check_token(request) -> str:
    """The appid of the access_token the call carries (WeChat's token errors otherwise)."""
    try:
        return tokens.check(request.GET.get("access_token", "")).appid
    except tokens.TokenError as error:
        raise SendError(error.errcode, error.errmsg) from None


def take_fault(times_field: str, errcode_field: str) -> int | None:
    """A global fault switch that answers the next N calls with an errcode: that errcode (and
    one fewer to go), or None when it is off."""
    row = Fault.objects.filter(out_trade_no="", **{f"{times_field}__gt": 0}).first()
    if row is None:
        return None
    if not Fault.objects.filter(pk=row.pk, **{f"{times_field}__gt": 0}).update(**{times_field: F(times_field) - 1}):
        return None
    code = getattr(row, errcode_field)
    return -1 if code is None else code


# --- The apps' templates -------------------------------------------------------------------------


def sandbox_apps() -> dict[str, str]:
    """appid -> the kind of template it has: the 公众号's 模板消息, the mini program's 订阅消息."""
    return {settings.WECHAT_APPID: MessageTemplate.TEMPLATE, settings.WECHAT_MINIPROGRAM_APPID: MessageTemplate.SUBSCRIBE}


def seed_templates(appid: str) -> int:
    """Add the app's templates (template_seeds) if it has none yet: the data migration's rows, or
    again in a database emptied since (a test's). How many were added."""
    kind = sandbox_apps().get(appid)
    if kind is None or MessageTemplate.objects.filter(appid=appid).exists():
        return 0
    seeds = template_seeds.OFFICIAL_ACCOUNT if kind == MessageTemplate.TEMPLATE else template_seeds.MINI_PROGRAM
    rows = [
        MessageTemplate(appid=appid, kind=kind, template_id=tid, title=title, keywords=[list(k) for k in keywords])
        for tid, title, keywords in seeds
    ]
    try:
        with transaction.atomic():
            MessageTemplate.objects.bulk_create(rows)
    except IntegrityError:  # another request seeded them first
        return 0
    return len(rows)


def templates_for(appid: str, kind: str | None = None, *, include_deleted: bool = False) -> list[MessageTemplate]:
    seed_templates(appid)
    found = MessageTemplate.objects.filter(appid=appid)
    if kind:
        found = found.filter(kind=kind)
    if not include_deleted:
        found = found.filter(deleted_at__isnull=True)
    return list(found.order_by("pk"))


def find_template(appid: str, kind: str, template_id: Any) -> MessageTemplate:
    if not isinstance(template_id, str) or not template_id:
        raise SendError(40037)
    seed_templates(appid)
    found = MessageTemplate.objects.filter(appid=appid, kind=kind, template_id=template_id, deleted_at__isnull=True).first()
    if found is None:
        raise SendError(40037)
    return found


# --- Keyword values (the types' rules: docs/wechat-pay-v2.md#keyword-types) --------------------

CJK = "\u3400-\u4dbf\u4e00-\u9fff"
_MONTH, _DAY = r"(0?[1-9]|1[0-2])", r"(0?[1-9]|[12]\d|3[01])"
_DATE = (
    rf"(\d{{4}}年{_MONTH}月({_DAY}日)?|{_MONTH}月{_DAY}日"
    rf"|\d{{4}}[-/.]{_MONTH}([-/.]{_DAY})?|{_MONTH}[-/.]{_DAY})"
)
_TIME = r"([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?"
_TIME_POINT = re.compile(rf"^({_DATE}\s*)?{_TIME}$")
_DATE_POINT = re.compile(rf"^{_DATE}(\s*{_TIME})?$")
_AMOUNT = re.compile(r"^[¥￥$€£]?(\d+)(\.(\d+))?元?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CJK_RE = re.compile(f"[{CJK}]")


def _is_symbols(text: str) -> bool:
    """Only symbols: no letters, digits, Chinese, spaces or control characters."""
    return bool(text) and not re.search(rf"[A-Za-z0-9\s{CJK}]", text) and not _CONTROL.search(text)


def _points(text: str, pattern: re.Pattern) -> bool:
    """A time or date, or a range of two joined by ~."""
    parts = [p.strip() for p in text.split("~")]
    return len(parts) <= 2 and all(pattern.match(p) for p in parts)


def _amount(text: str, digits: int) -> bool:
    found = _AMOUNT.match(text)
    return found is not None and len(found.group(1) + (found.group(3) or "")) <= digits


def _name(text: str) -> bool:
    if _CJK_RE.search(text):  # Chinese, or Chinese and letters mixed: counted as Chinese
        return len(text) <= 10 and bool(re.fullmatch(rf"[{CJK}A-Za-z·]+", text))
    return len(text) <= 20 and not re.search(r"\d", text) and not _CONTROL.search(text)


def value_ok(kind: str, key_type: str, text: str) -> bool:
    """Whether a keyword value keeps its type's rule (`kind`: the 公众号's template messages allow
    12 digits in an amount, subscribe messages 10)."""
    if _CONTROL.search(text):
        return False
    rules = {
        "thing": lambda t: len(t) <= 20,
        "number": lambda t: len(t) <= 32 and bool(re.fullmatch(r"\d+(\.\d+)?", t)),
        "letter": lambda t: bool(re.fullmatch(r"[A-Za-z]{1,32}", t)),
        "symbol": lambda t: len(t) <= 5 and _is_symbols(t),
        "character_string": lambda t: bool(re.fullmatch(r"[\x21-\x7e]{1,32}", t)),
        "time": lambda t: _points(t, _TIME_POINT),
        "date": lambda t: _points(t, _DATE_POINT),
        "amount": lambda t: _amount(t, 12 if kind == MessageTemplate.TEMPLATE else 10),
        "phone_number": lambda t: len(t) <= 17 and bool(re.fullmatch(r"[0-9+\-()#* ]+", t)) and bool(re.search(r"\d", t)),
        "car_number": lambda t: len(t) <= 8 and bool(re.fullmatch(rf"[{CJK}]?[A-Za-z0-9]+[{CJK}]?", t)),
        "name": _name,
        "phrase": lambda t: bool(re.fullmatch(f"[{CJK}]{{1,5}}", t)),
        # const (公众号) and enum (订阅消息) take only the values the platform approved, which the
        # sandbox does not know: it holds them to const's length.
        "const": lambda t: len(t) <= 20,
        "enum": lambda t: len(t) <= 20,
    }
    rule = rules.get(key_type)
    return rule(text) if rule else len(text) <= 20


def key_type(key: str) -> str:
    """A keyword's type from its key: `character_string1` -> `character_string`."""
    return key.rstrip("0123456789")


def check_data(template: MessageTemplate, data: Any) -> None:
    """47003 when a keyword of the template is missing or empty, or breaks its type's rule, the
    errmsg naming the field as WeChat's does. Keys the template does not have are ignored."""
    data = data if isinstance(data, dict) else {}
    for key, _ in template.keywords:
        item = data.get(key)
        value = item.get("value") if isinstance(item, dict) else None
        text = "" if value is None or isinstance(value, (dict, list)) else str(value)
        if not text.strip():
            raise SendError(47003, f"argument invalid! data.{key}.value is empty")
        if not value_ok(template.kind, key_type(key), text):
            raise SendError(47003, f"argument invalid! data.{key}.value invalid")


# --- Users ---------------------------------------------------------------------------------------

_OPENID_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,64}")


def _seen_under(appid: str, openid: str) -> bool:
    return any(
        model.objects.filter(appid=appid, openid=openid).exists()
        for model in (AuthCode, Trade, AppUser, SubscribeDecision, SentMessage)
    )


def check_openid(appid: str, openid: Any) -> str:
    """40003 for what cannot be an openid of this app: not shaped like one, or one the sandbox has
    seen only under its other app (openids are per app). Any other well-formed openid is taken to
    be a user of the app."""
    if not isinstance(openid, str) or not _OPENID_SHAPE.fullmatch(openid):
        raise SendError(40003)
    others = [a for a in sandbox_apps() if a != appid]
    if any(_seen_under(other, openid) for other in others) and not _seen_under(appid, openid):
        raise SendError(40003)
    return openid


def user_state(appid: str, openid: str) -> AppUser:
    return AppUser.objects.filter(appid=appid, openid=openid).first() or AppUser(appid=appid, openid=openid)


def _set_user(appid: str, openid: str, **fields: bool) -> None:
    AppUser.objects.update_or_create(appid=appid, openid=openid, defaults={**fields, "updated_at": timezone.now()})


# --- Sending -------------------------------------------------------------------------------------


def new_msgid() -> int:
    """A msgid as large as WeChat's (19 digits, within a signed 64-bit integer)."""
    return 10**18 + secrets.randbelow(8 * 10**18)


def _dedupe_key(appid: str, openid: str, client_msg_id: str) -> str:
    return hashlib.sha256(f"{appid}\n{openid}\n{client_msg_id}".encode()).hexdigest()


def _record(template: MessageTemplate, openid: str, fields: dict, dedupe_key: str | None) -> int:
    """Keep the message the user's WeChat now shows; its msgid. With a dedupe key another send
    may have won the race: its msgid then."""
    for _ in range(3):
        try:
            with transaction.atomic():
                sent = SentMessage.objects.create(
                    appid=template.appid,
                    kind=template.kind,
                    openid=openid,
                    msgid=new_msgid(),
                    template_id=template.template_id,
                    title=template.title,
                    keywords=template.keywords,
                    dedupe_key=dedupe_key,
                    **fields,
                )
            return sent.msgid
        except IntegrityError:
            winner = SentMessage.objects.filter(dedupe_key=dedupe_key).first() if dedupe_key else None
            if winner is not None:
                return winner.msgid
    raise SendError(-1)


def _earlier_send(dedupe_key: str) -> int | None:
    """The msgid of a send with the same openid and client_msg_id less than 10 minutes ago; an
    older one stops counting (WeChat keeps the key 10 minutes)."""
    earlier = SentMessage.objects.filter(dedupe_key=dedupe_key).first()
    if earlier is None:
        return None
    if timezone.now() - earlier.sent_at < DEDUPE_WINDOW:
        return earlier.msgid
    SentMessage.objects.filter(pk=earlier.pk, dedupe_key=dedupe_key).update(dedupe_key=None)
    return None


def send_template(appid: str, data: dict) -> int:
    """template/send once the token is checked: WeChat's checks in order, then the message."""
    openid = check_openid(appid, data.get("touser"))
    template = find_template(appid, MessageTemplate.TEMPLATE, data.get("template_id"))
    check_data(template, data.get("data"))
    client_msg_id = data.get("client_msg_id")
    key = _dedupe_key(appid, openid, str(client_msg_id)) if client_msg_id not in (None, "") else None
    if key is not None:
        earlier = _earlier_send(key)
        if earlier is not None:
            return earlier
    user = user_state(appid, openid)
    if not user.follows:
        raise SendError(43004)
    if user.messages_blocked:
        raise SendError(43101)
    mini = data.get("miniprogram")
    fields = {
        "data": data.get("data"),
        "url": str(data.get("url") or "")[:1024],
        "miniprogram": {k: str(mini.get(k) or "") for k in ("appid", "pagepath")} if isinstance(mini, dict) else {},
        "client_msg_id": str(client_msg_id or "")[:64],
    }
    return _record(template, openid, fields, key)


def send_subscribe(appid: str, data: dict) -> int:
    """subscribe/send once the token is checked: uses up one of the user's grants."""
    openid = check_openid(appid, data.get("touser"))
    template = find_template(appid, MessageTemplate.SUBSCRIBE, data.get("template_id"))
    check_data(template, data.get("data"))
    if user_state(appid, openid).messages_blocked:
        raise SendError(43101)
    state = data.get("miniprogram_state") if data.get("miniprogram_state") in MINIPROGRAM_STATES else "formal"
    lang = data.get("lang") if data.get("lang") in LANGS else "zh_CN"
    fields = {"data": data.get("data"), "page": str(data.get("page") or "")[:1024], "miniprogram_state": state, "lang": lang}
    grant = _use_grant(appid, openid, template.template_id)
    if grant is None:
        raise SendError(43101)
    try:
        return _record(template, openid, fields, None)
    except SendError:
        SubscribeDecision.objects.filter(pk=grant).update(used_at=None)  # not sent: the grant stays
        raise


def _use_grant(appid: str, openid: str, template_id: str) -> int | None:
    """Use the oldest unused accept (compare-and-set: two sends never share one); its pk."""
    unused = SubscribeDecision.objects.filter(
        appid=appid, openid=openid, template_id=template_id, decision=SubscribeDecision.ACCEPT, used_at__isnull=True
    )
    for _ in range(5):
        grant = unused.order_by("decided_at", "pk").first()
        if grant is None:
            return None
        if SubscribeDecision.objects.filter(pk=grant.pk, used_at__isnull=True).update(used_at=timezone.now()):
            return grant.pk
    return None


def _send_view(request, send) -> JsonResponse:
    if request.method != "POST":
        return error_answer(43002, ERRMSG[43002])
    try:
        appid = check_token(request)
        failing = take_fault("message_fail_times", "message_fail_errcode")
        if failing is not None:
            raise SendError(failing)
        msgid = send(appid, read_json(request))
    except SendError as error:
        return error_answer(error.errcode, error.errmsg)
    return ok_answer(msgid=msgid)


@csrf_exempt
def template_send(request):
    """POST cgi-bin/message/template/send?access_token=… (the 公众号's token)."""
    return _send_view(request, send_template)


@csrf_exempt
def subscribe_send(request):
    """POST cgi-bin/message/subscribe/send?access_token=… (the mini program's token)."""
    return _send_view(request, send_subscribe)


# --- wx.requestSubscribeMessage --------------------------------------------------------------------


def subscribe(openid: str, decisions: dict[str, str], appid: str | None = None) -> dict[str, Any]:
    """Play wx.requestSubscribeMessage in the mini program: the user's choice for each template id
    ("accept", "reject" or "ban"). Answers what the call resolves with ({"errMsg":
    "requestSubscribeMessage:ok", "<tmplId>": "accept", …}) or fails with ({"errMsg":
    "requestSubscribeMessage:fail …", "errCode": …}); each accept is one send."""
    appid = appid or settings.WECHAT_MINIPROGRAM_APPID

    def fail(code: int, text: str) -> dict[str, Any]:
        return {"errMsg": f"requestSubscribeMessage:fail {text}", "errCode": code}

    if not decisions:
        return fail(10001, "TmplIds can't be empty")
    if not all(isinstance(t, str) and t for t in decisions):
        return fail(10004, "Invalid template id")
    if len(decisions) > SUBSCRIBE_MAX_TEMPLATES:
        return fail(20003, "Templates count out of max bounds")
    known = {t.template_id: t for t in templates_for(appid, MessageTemplate.SUBSCRIBE)}
    if any(t not in known for t in decisions):
        return fail(20001, "No template data return, verify the template id exist")
    if user_state(appid, openid).messages_blocked:
        return fail(20004, "The main switch is switched off")
    answer: dict[str, Any] = {"errMsg": "requestSubscribeMessage:ok"}
    titles: set[str] = set()
    rows = []
    for template_id, choice in decisions.items():
        if known[template_id].title in titles:  # two templates of one title: WeChat keeps one
            answer[template_id] = "filter"
            continue
        titles.add(known[template_id].title)
        choice = choice if choice in (SubscribeDecision.ACCEPT, SubscribeDecision.BAN) else SubscribeDecision.REJECT
        rows.append(SubscribeDecision(appid=appid, openid=openid, template_id=template_id, decision=choice))
        answer[template_id] = choice
    SubscribeDecision.objects.bulk_create(rows)
    return answer


@csrf_exempt
@require_POST
def mp_subscribe(request):
    """POST mp/subscribe {appid, openid (or user: a sandbox person), decisions: {tmplId: choice}}:
    wx.requestSubscribeMessage, as the mini program would call it. Answers what the call resolves
    (or fails) with."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("decisions", {}), dict):
        return JsonResponse({"errMsg": "requestSubscribeMessage:fail Invalid template id", "errCode": 10004})
    appid = body.get("appid") or settings.WECHAT_MINIPROGRAM_APPID
    if sandbox_apps().get(appid) != MessageTemplate.SUBSCRIBE:
        return JsonResponse({"errMsg": "requestSubscribeMessage:fail invalid appid", "errCode": 10004})
    openid = body.get("openid")
    if not openid and isinstance(body.get("user"), str) and body["user"]:
        openid = services.openid_for(appid, body["user"])
    if not isinstance(openid, str) or not _OPENID_SHAPE.fullmatch(openid):
        return JsonResponse({"errMsg": "requestSubscribeMessage:fail invalid openid", "errCode": 10004})
    return JsonResponse(subscribe(openid, body.get("decisions") or {}, appid))


# --- Helpers for tests -----------------------------------------------------------------------------


def delete_template(template_id: str) -> int:
    """Play the merchant deleting a template in its console: sends with its id answer 40037 (and
    wx.requestSubscribeMessage 20001). How many templates were deleted."""
    for appid in sandbox_apps():
        seed_templates(appid)
    return MessageTemplate.objects.filter(template_id=template_id, deleted_at__isnull=True).update(deleted_at=timezone.now())


def restore_template(template_id: str) -> int:
    """Add a deleted template back (the sandbox keeps its id; WeChat would give a new one)."""
    return MessageTemplate.objects.filter(template_id=template_id, deleted_at__isnull=False).update(deleted_at=None)


def set_follow(appid: str, openid: str, follows: bool) -> None:
    """The user follows the 公众号 or not (not: template messages answer 43004)."""
    _set_user(appid, openid, follows=follows)


def block_messages(appid: str, openid: str, blocked: bool = True) -> None:
    """The user turns the app's messages off (template and subscribe sends answer 43101) or on."""
    _set_user(appid, openid, messages_blocked=blocked)


def fail_next_sends(errcode: int = -1, times: int = 1) -> None:
    """The next `times` template or subscribe sends answer `errcode` (-1 system error, 40001 …)."""
    Fault.objects.update_or_create(out_trade_no="", defaults={"message_fail_errcode": errcode, "message_fail_times": times})


def grants_left(openid: str, template_id: str, appid: str | None = None) -> int:
    """Sends of the template the user's accepts still allow."""
    return SubscribeDecision.objects.filter(
        appid=appid or settings.WECHAT_MINIPROGRAM_APPID,
        openid=openid,
        template_id=template_id,
        decision=SubscribeDecision.ACCEPT,
        used_at__isnull=True,
    ).count()


def lines(message: SentMessage) -> list[dict[str, str]]:
    """The message's keyword lines as the user's WeChat shows them: name and the value sent."""
    data = message.data if isinstance(message.data, dict) else {}
    shown = []
    for key, name in message.keywords:
        item = data.get(key)
        value = item.get("value") if isinstance(item, dict) else ""
        shown.append({"key": key, "name": name, "value": "" if value is None else str(value)})
    return shown


def as_dict(message: SentMessage) -> dict[str, Any]:
    shown = lines(message)
    return {
        "msgid": message.msgid,
        "kind": message.kind,
        "appid": message.appid,
        "openid": message.openid,
        "template_id": message.template_id,
        "title": message.title,
        "lines": shown,
        "text": "\n".join([message.title, *(f"{line['name']}：{line['value']}" for line in shown)]),
        "data": message.data,
        "url": message.url,
        "miniprogram": message.miniprogram or None,
        "page": message.page,
        "client_msg_id": message.client_msg_id,
        "sent_at": message.sent_at.isoformat(),
    }


def messages_for(openid: str) -> list[dict[str, Any]]:
    """Every message sent to this openid (in either app), newest first, as dicts: msgid, kind
    ("template" or "subscribe"), title, lines [{key, name, value}], text ("充值成功通知\\n充值金额：¥100.00"),
    data, url, miniprogram, page, client_msg_id, sent_at."""
    return [as_dict(m) for m in SentMessage.objects.filter(openid=openid).order_by("-sent_at", "-pk")]


# --- The phone page --------------------------------------------------------------------------------


@dataclass
class Identity:
    """Whose phone the page shows: a sandbox person (both openids) or one openid."""

    label: str
    official: str | None  # openid in the 公众号
    mini: str | None  # openid in the mini program
    person: str = ""

    @property
    def openids(self) -> list[str]:
        return [o for o in (self.official, self.mini) if o]


def identity(request) -> Identity | None:
    q = request.GET
    openid = (q.get("openid") or "").strip()
    if openid:
        official = openid if _seen_under(settings.WECHAT_APPID, openid) else None
        mini = openid if _seen_under(settings.WECHAT_MINIPROGRAM_APPID, openid) else None
        if official is None and mini is None:  # seen nowhere yet: show both apps
            official = mini = openid
        return Identity(openid, official, mini)
    person = (q.get("user") or "").strip()[:128]
    label = f"沙箱用户 {person}"
    if not person:
        person, label = request.COOKIES.get(BROWSER_COOKIE, ""), "本机的沙箱微信"
    if not person:
        return None
    return Identity(
        label,
        services.openid_for(settings.WECHAT_APPID, person),
        services.openid_for(settings.WECHAT_MINIPROGRAM_APPID, person),
        person,
    )


def recipients() -> list[str]:
    """Openids that recently got a message, newest first, for the page's chooser."""
    seen: list[str] = []
    for openid in SentMessage.objects.order_by("-sent_at").values_list("openid", flat=True)[:200]:
        if openid not in seen:
            seen.append(openid)
        if len(seen) >= RECIPIENTS_SHOWN:
            break
    return seen


def _message_view(message: SentMessage) -> dict[str, Any]:
    mini = message.miniprogram or {}
    # WeChat opens the mini program when both are given; only an http(s) url becomes a link here.
    href = message.url if message.url.startswith(("https://", "http://")) else ""
    return {
        "m": message,
        "lines": lines(message),
        "pagepath": mini.get("pagepath", "") if mini.get("appid") else "",
        "href": href,
    }


def _shipping_rows(openid: str) -> list[dict[str, Any]]:
    trades = Trade.objects.filter(appid=settings.WECHAT_MINIPROGRAM_APPID, openid=openid, transaction_id__isnull=False)
    rows = []
    for trade in trades.order_by("-created_at")[:20]:
        order = ShippingOrder.objects.filter(trade=trade).first()
        state = ShippingOrder.state_for(trade, order)
        label = dict(ShippingOrder.STATES)[state]
        rows.append({"trade": trade, "order": order, "state": state, "state_label": label, "yuan": format_fen(trade.total_fee)})
    return rows


def _page_context(request, who: Identity) -> dict[str, Any]:
    sent = SentMessage.objects.filter(openid__in=who.openids).order_by("-sent_at", "-pk")
    context: dict[str, Any] = {"who": who}
    if who.official:
        user = user_state(settings.WECHAT_APPID, who.official)
        context["official"] = {
            "appid": settings.WECHAT_APPID,
            "openid": who.official,
            "follows": user.follows,
            "receives": not user.messages_blocked,
            "messages": [_message_view(m) for m in sent.filter(appid=settings.WECHAT_APPID, kind=MessageTemplate.TEMPLATE)],
        }
    if who.mini:
        appid = settings.WECHAT_MINIPROGRAM_APPID
        context["mini"] = {
            "appid": appid,
            "openid": who.mini,
            "receives": not user_state(appid, who.mini).messages_blocked,
            "messages": [_message_view(m) for m in sent.filter(appid=appid, kind=MessageTemplate.SUBSCRIBE)],
            "grants": [
                {"template": t, "left": grants_left(who.mini, t.template_id, appid)}
                for t in templates_for(appid, MessageTemplate.SUBSCRIBE)
            ],
            "shipping": _shipping_rows(who.mini),
        }
    return context


def page_url(who: Identity | None) -> str:
    url = reverse("sandbox:messages")
    if who is None:
        return url
    return url + (f"?user={who.person}" if who.person else f"?openid={who.label}")


@require_GET
def messages_page(request):
    """The phone: a sandbox WeChat's messages, newest first (JSON with ?format=json)."""
    who = identity(request)
    if request.GET.get("format") == "json":
        if who is None:
            return JsonResponse({"error": "openid or user required"}, status=400)
        found = SentMessage.objects.filter(openid__in=who.openids).order_by("-sent_at", "-pk")
        return JsonResponse(
            {"openids": who.openids, "messages": [as_dict(m) for m in found]}, json_dumps_params={"ensure_ascii": False}
        )
    context: dict[str, Any] = {"recipients": recipients(), "who": who, "back": page_url(who)}
    if who is not None:
        context.update(_page_context(request, who))
    return render(request, "sandbox/messages.html", context)


@require_POST
def messages_act(request):
    """The phone's buttons: follow or unfollow the 公众号, turn an app's messages off or on, and
    允许/拒绝 one more subscribe message (wx.requestSubscribeMessage)."""
    p = request.POST
    action, appid, openid = p.get("action", ""), p.get("appid", ""), p.get("openid", "")
    back = p.get("back", "")
    back = back if back.startswith(reverse("sandbox:messages")) else reverse("sandbox:messages")
    if appid not in sandbox_apps() or not _OPENID_SHAPE.fullmatch(openid):
        return HttpResponseRedirect(back)
    if action in ("follow", "unfollow"):
        set_follow(appid, openid, action == "follow")
    elif action in ("block", "unblock"):
        block_messages(appid, openid, action == "block")
    elif action in ("accept", "reject"):
        subscribe(openid, {p.get("template_id", ""): action}, appid)
    return HttpResponseRedirect(back)


# --- The templates page ------------------------------------------------------------------------


@require_GET
def templates_page(request):
    """The apps' templates (id, title, keywords) for an operator to copy ids, and the merchant's
    删除 / 恢复."""
    apps = []
    for appid, kind in sandbox_apps().items():
        rows = templates_for(appid, include_deleted=True)
        for row in rows:
            row.keyword_rows = [{"key": k, "name": n, "type": key_type(k)} for k, n in row.keywords]
        apps.append({"appid": appid, "kind": dict(MessageTemplate.KINDS)[kind], "templates": rows})
    return render(request, "sandbox/templates.html", {"apps": apps})


@require_POST
def template_delete(request, pk: int):
    template = get_object_or_404(MessageTemplate, pk=pk)
    MessageTemplate.objects.filter(pk=template.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    return redirect("sandbox:templates")


@require_POST
def template_restore(request, pk: int):
    MessageTemplate.objects.filter(pk=pk).update(deleted_at=None)
    return redirect("sandbox:templates")


def describe_faults(fault: Fault) -> list[str]:
    """The dashboard's words for this module's switches (and shipping's and the robot's)."""
    parts = []
    if fault.message_fail_times:
        code = -1 if fault.message_fail_errcode is None else fault.message_fail_errcode
        parts.append(f"接下来 {fault.message_fail_times} 次消息发送答 {code}")
    if fault.shipping_fail_times:
        code = -1 if fault.shipping_fail_errcode is None else fault.shipping_fail_errcode
        parts.append(f"接下来 {fault.shipping_fail_times} 次发货录入答 {code}")
    if fault.robot_down:
        parts.append("告警机器人宕机（HTTP 500）")
    return parts

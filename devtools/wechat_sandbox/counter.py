"""The sandbox plays the merchant's side of spending: a counter (POS) page that charges a
member code through the site's real merchant API (/api/v1/, docs/merchant-api.md) with an API
client of its own, and a webhook receiver that checks each event's signature the Standard
Webhooks way (docs/webhooks.md) and lists what came.

It sets itself up the way a merchant would: with the site's own commands (create_api_client,
add_webhook_endpoint), whose secrets it keeps (MerchantSecret). It imports no app of the
product: only its HTTP API and its commands.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import time

import requests
from django.conf import settings
from django.contrib import messages
from django.core.management import call_command
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from common.money import format_fen, parse_yuan
from devtools.wechat_sandbox.models import MerchantSecret, WebhookReceipt
from devtools.wechat_sandbox.transport import InProcessAdapter

STORE = "沙箱门店"
# The events the sandbox's receiver subscribes to: all there are (docs/webhooks.md#events).
EVENTS = "recharge.succeeded,refund.succeeded,refund.failed,charge.succeeded,charge.reversed,balance.adjusted"
TOLERANCE = 5 * 60
# The API's charge statuses, in the counter's words.
STATUS_TEXT = {"succeeded": "已扣款", "partially_reversed": "部分撤销", "reversed": "已撤销"}
RECEIPTS_SHOWN = 50


def _secret(name: str, command: str, *args: str) -> str:
    """The secret the site's `command` printed for the sandbox, made on first use."""
    found = MerchantSecret.objects.filter(name=name).first()
    if found is None:
        out = io.StringIO()
        call_command(command, *args, stdout=out, stderr=io.StringIO())
        found, _ = MerchantSecret.objects.get_or_create(name=name, defaults={"value": out.getvalue().strip()})
    return found.value


def api_key() -> str:
    return _secret(
        "counter_api_key",
        "create_api_client",
        "沙箱收银台",
        "--scopes",
        "charges:write,charges:read,members:read",
        "--store",
        STORE,
    )


def receiver_url() -> str:
    return settings.SITE_URL + reverse("sandbox:webhook_receive")


def webhook_secret() -> str:
    """The receiver's secret, for the receiver's URL as this server serves it (another port
    is another endpoint)."""
    url = receiver_url()
    return _secret(f"webhook_secret {url}", "add_webhook_endpoint", url, "--events", EVENTS, "--description", "微信沙箱的接收页")


def _api(method: str, path: str, body: dict | None = None, key: str | None = None) -> tuple[int, dict]:
    """Call the site's merchant API as the counter's server does (in process, like the
    sandbox's other calls to this same site: a single worker cannot answer itself)."""
    session = requests.Session()
    session.mount(settings.SITE_URL + "/api/v1/", InProcessAdapter())
    headers = {"Authorization": f"Bearer {api_key()}"}
    if key:
        headers["Idempotency-Key"] = key
    with session:
        answer = session.request(method, settings.SITE_URL + path, json=body, headers=headers, timeout=10)
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"error": {"code": "not_json", "message": answer.text[:200]}}


@require_http_methods(["GET", "POST"])
def counter(request):
    """/sandbox/pos/: charge a member code, reverse a charge, see the counter's charges."""
    webhook_secret()  # the receiver hears about what the counter does
    if request.method == "POST":
        return _charge(request) if request.POST.get("action") == "charge" else _reverse(request)
    _, listing = _api("GET", "/api/v1/charges?limit=10")
    charges = listing.get("data", [])
    for charge in charges:
        charge["yuan"] = format_fen(charge["amount"])
        charge["status_text"] = STATUS_TEXT.get(charge["status"], charge["status"])
        charge["time"] = charge["created_at"][5:16].replace("T", " ")  # "12-07 15:13", Beijing
        charge["reversible"] = charge["amount"] - charge["amount_reversed"]
        charge["reversible_yuan"] = format_fen(charge["reversible"])
    return render(
        request,
        "sandbox/counter.html",
        {"charges": charges, "sale_key": secrets.token_hex(12), "store": STORE, "result": request.session.pop("counter", None)},
    )


def _charge(request):
    code = request.POST.get("member_code", "").replace(" ", "").strip()
    fen = parse_yuan(request.POST.get("amount", ""))
    if not code or fen is None or fen <= 0:
        messages.error(request, "请输入会员码和正确的金额（元）")
        return redirect("sandbox:counter")
    body = {"member_code": code, "amount": fen, "description": request.POST.get("description", "").strip()[:200]}
    # One Idempotency-Key per sale (made with the form): sending the form twice charges once.
    status, answer = _api("POST", "/api/v1/charges", body, key=request.POST.get("sale_key", "")[:64] or None)
    if status == 201:
        request.session["counter"] = {
            "ok": True,
            "amount": format_fen(answer["charge"]["amount"]),
            "balance": format_fen(answer["balance"]),
            "charge": answer["charge"]["id"],
        }
    else:
        request.session["counter"] = {"ok": False, "status": status, **answer.get("error", {})}
    return redirect("sandbox:counter")


def _reverse(request):
    number = request.POST.get("charge", "")
    fen = parse_yuan(request.POST.get("amount", ""))
    body = {"reason": "沙箱收银台撤销", **({"amount": fen} if fen else {})}
    status, answer = _api("POST", f"/api/v1/charges/{number}/reversals", body, key=f"reverse-{secrets.token_hex(8)}")
    if status == 201:
        messages.success(
            request, f"已撤销 ¥{format_fen(answer['reversal']['amount'])}，会员余额 ¥{format_fen(answer['balance'])}"
        )
    else:
        messages.error(request, answer.get("error", {}).get("message", f"撤销失败（HTTP {status}）"))
    return redirect("sandbox:counter")


def verify(secret: str, headers, body: bytes, now: float | None = None) -> str:
    """Why a webhook does not verify ("" when it does): Standard Webhooks' HMAC-SHA256 over
    "id.timestamp.body" with the base64-decoded secret, a timestamp within 5 minutes."""
    webhook_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not webhook_id or not timestamp.isdigit():
        return "缺少 webhook-id 或 webhook-timestamp"
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE:
        return "webhook-timestamp 与当前时间相差超过 5 分钟"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in headers.get("webhook-signature", "").split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return ""
    return "签名不符"


@csrf_exempt
@require_POST
def webhook_receive(request):
    """Where the site's webhooks come: kept with whether they verified; 204 when they did."""
    body = request.body
    found = MerchantSecret.objects.filter(name=f"webhook_secret {receiver_url()}").first()
    problem = verify(found.value, request.headers, body) if found else "沙箱未登记这个接收地址"
    try:
        event_type = json.loads(body).get("type", "")
    except (ValueError, AttributeError):
        event_type = ""
    WebhookReceipt.objects.create(
        webhook_id=request.headers.get("webhook-id", "")[:80],
        event_type=str(event_type)[:40],
        body=body.decode("utf-8", "replace")[:5000],
        signature_valid=not problem,
        problem=problem,
    )
    return HttpResponse(status=400 if problem else 204)


def webhooks(request):
    """/sandbox/webhooks/: what the site sent the receiver, newest first."""
    receipts = list(WebhookReceipt.objects.all()[:RECEIPTS_SHOWN])
    for receipt in receipts:
        try:
            receipt.pretty = json.dumps(json.loads(receipt.body), ensure_ascii=False, indent=2)
        except ValueError:
            receipt.pretty = receipt.body
    return render(request, "sandbox/webhooks.html", {"receipts": receipts, "receiver_url": receiver_url()})

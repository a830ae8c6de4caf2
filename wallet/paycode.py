"""The member pay code (会员码): the page a member shows at the counter, and its JSON.

The page shows the member's current one-time code (MemberCode.current: the same code for a
minute, each valid 90 s) as a Code 128 barcode with its digits under it, and as a QR code.
static/js/paycode.js asks code.json for the code every couple of seconds with `?code=` the
code it shows: the answer brings the next code when the minute is up, and, once a counter has
charged the code shown, the charge (`paid`), which the page shows as 支付成功.

Both images are SVG markup made here from the code alone (digits drawn by us, never user
input), inlined into the page: no fetch, and no style attribute (the Content-Security-Policy
allows no inline style), only presentation attributes. Neither answer may be cached: the
code is a bearer token for the member's balance while it lives.
"""

from __future__ import annotations

import functools
import logging
from html import escape

import segno
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from common.http import json_error, json_ok
from common.money import format_fen
from wallet.models import Charge, MemberCode
from wxproto.beijing import beijing_iso

# python-barcode says, at INFO, when it is imported that it has no Pillow for images: we need
# none (it encodes, we draw). Only its warnings are worth a line in the log.
logging.getLogger("pyBarcode").setLevel(logging.WARNING)

# Code 128 asks for a quiet zone of at least ten modules on each side of the bars.
QUIET_ZONE = 10
# At most this many codes a page may ask about at once (it shows one a minute, each valid 90 s).
MAX_SHOWN = 3
# How often the page asks whether the code shown was charged (seconds).
POLL_SECONDS = 2


@functools.lru_cache(maxsize=256)
def barcode_svg(code: str) -> str:
    """The code as a Code 128 barcode: python-barcode encodes it (for 18 digits: code set C,
    its check symbol, the stop pattern), and each run of dark modules is one rect. One unit
    of the viewBox is one module; the page stretches it to its width (preserveAspectRatio
    none scales every bar alike, so the widths keep their ratios)."""
    import barcode  # here, after its logger is set (above)

    modules = barcode.Code128(code).build()[0]
    width = len(modules) + 2 * QUIET_ZONE
    bars = []
    start = None
    for x, module in enumerate(modules + "0"):
        if module == "1" and start is None:
            start = x
        elif module != "1" and start is not None:
            bars.append(f'<rect x="{QUIET_ZONE + start}" y="0" width="{x - start}" height="60"/>')
            start = None
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="paycode__barcode-svg" viewBox="0 0 {width} 60" '
        f'preserveAspectRatio="none" shape-rendering="crispEdges" role="img" aria-label="会员码条形码" '
        f'data-code="{escape(code)}">'
        f'<rect x="0" y="0" width="{width}" height="60" fill="#fff"/><g fill="#000">{"".join(bars)}</g></svg>'
    )


@functools.lru_cache(maxsize=256)
def qr_svg(code: str) -> str:
    """The code as a QR code (a full QR, never a Micro QR, which few counters read), sized by CSS."""
    qr = segno.make_qr(code, error="m")
    return qr.svg_inline(
        scale=1, border=4, omitsize=True, svgclass="paycode__qr-svg", lineclass=None, light="#fff", title="会员码二维码"
    )


def group_digits(code: str) -> str:
    """The digits in fours for reading aloud, as WeChat's 付款码 shows them: 8812 3456 … 56."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def _code_answer(code: MemberCode, balance: int) -> dict:
    return {
        "code": code.code,
        "digits": group_digits(code.code),
        "expires_at": beijing_iso(code.expires_at, timespec="auto"),
        # Seconds rather than a time alone: the phone's clock may be wrong.
        "expires_in": code.seconds_left,
        "balance": balance,
        "balance_yuan": format_fen(balance),
        "qr_svg": qr_svg(code.code),
        "barcode_svg": barcode_svg(code.code),
    }


def _paid(user, shown: list[str]) -> dict | None:
    """The latest charge that used one of the codes `shown` (the page sends those it showed
    that may still be valid: a code scanned just before the page moved on to the next one is
    still charged), when they are this user's; None otherwise (a code of another user,
    unknown or not charged: the same None)."""
    shown = [code for code in shown[:MAX_SHOWN] if code and len(code) <= 32]
    if not shown:
        return None
    charge = (
        Charge.objects.filter(user=user, member_code__user=user, member_code__code__in=shown)
        .select_related("entry")
        .order_by("-pk")
        .first()
    )
    if charge is None:
        return None
    return {
        "charge": charge.number,
        "amount": charge.amount,
        "amount_yuan": format_fen(charge.amount),
        "balance": charge.entry.balance_after,
        "balance_yuan": format_fen(charge.entry.balance_after),
        "store": charge.store,
        "description": charge.description,
        "paid_at": beijing_iso(charge.created_at, timespec="auto"),
    }


@never_cache
@require_GET
@login_required
def page(request):
    """会员码: balance, barcode with its digits, QR code; paycode.js keeps it current."""
    code = MemberCode.current(request.user)
    request.user.refresh_from_db(fields=["balance"])
    return render(
        request,
        "wallet/code.html",
        {
            "code": code,
            "digits": group_digits(code.code),
            "barcode_svg": barcode_svg(code.code),
            "qr_svg": qr_svg(code.code),
            "renew_seconds": int(MemberCode.RENEW_EVERY.total_seconds()),
            "poll_seconds": POLL_SECONDS,
        },
    )


@never_cache
@require_GET
def code_json(request):
    """The current code and the balance; with `?code=` one of this user's codes that a
    charge used, also `paid`. Signed-in users only: 401 JSON otherwise (never a redirect)."""
    if not request.user.is_authenticated:
        return json_error("login_required", 401)
    # The charge first, then the balance: a charge that lands in between shows in both.
    paid = _paid(request.user, request.GET.getlist("code"))
    code = MemberCode.current(request.user)
    request.user.refresh_from_db(fields=["balance"])
    answer = _code_answer(code, request.user.balance)
    if paid is not None:
        answer["paid"] = paid
    return json_ok(answer)

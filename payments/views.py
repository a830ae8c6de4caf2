from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.binding import OTHER, UNKNOWN, paying_wechat
from common.http import in_wechat, on_phone
from common.money import format_fen
from offers.models import short_yuan
from orders.views import H5_REFERRER_POLICY
from payments import notifies, services
from payments.providers import notify_routes, provider_class
from wxproto import v2 as wxpay

logger = logging.getLogger(__name__)


def bind_url(next_path: str) -> str:
    return reverse("accounts:wechat_authorize") + "?" + urlencode({"next": next_path})


def recharge_url(amount: int | None = None, bound: bool = False, package: int | None = None) -> str:
    """/recharge/, with the package (or else the amount) to preselect and, back from binding
    WeChat, a flag to say so."""
    query: dict[str, str] = {}
    if package is not None:
        query["package"] = str(package)
    elif amount is not None:
        query["amount"] = format_fen(amount)
    if bound:
        query["bound"] = "1"
    return reverse("payments:recharge") + (f"?{urlencode(query)}" if query else "")


def _presets() -> list[tuple[str, int]]:
    presets = []
    for text in settings.RECHARGE_PRESETS:
        try:
            presets.append((text.strip(), services.parse_amount(text.strip())))
        except services.InvalidAmount:
            logger.warning("RECHARGE_PRESETS: %r is not a valid amount; left out", text)
    return presets


def _restates_amounts(name: str, price: int, bonus: int) -> bool:
    """Whether a package's name only says its amounts again (充100送20, 充 100 送 20, ¥100,
    100元): the cell shows those already, so such a name is not worth a tag."""
    compact = "".join(name.split())
    price_text, bonus_text = short_yuan(price), short_yuan(bonus)
    if bonus:
        return compact in {f"充{price_text}送{bonus_text}", f"充{price_text}元送{bonus_text}元"}
    return compact in {f"¥{price_text}", f"￥{price_text}", f"{price_text}元", f"充{price_text}", f"充{price_text}元"}


def _package_cells(packages: list[dict]) -> list[dict]:
    """The packages on sale (Package.to_dict()) as the grid shows them: the price big, the bonus
    under it, one small tag (a name of its own, else the limit), and the line shown under the
    grid when it is chosen (what reaches the balance, how long the bonus lasts, the limit)."""
    cells = []
    for package in packages:
        price, bonus, days, limit = (
            package["price_fen"],
            package["bonus_fen"],
            package["bonus_valid_days"],
            package["per_user_limit"],
        )
        named = not _restates_amounts(package["name"], price, bonus)
        hint = [f"支付 ¥{format_fen(price)}" + (f"，到账 ¥{format_fen(price + bonus)}" if bonus else "")]
        if bonus and days:
            hint.append(f"赠送 {days} 天内有效")
        if limit:
            hint.append(f"每人限购 {limit} 次")
        tag = ""
        if named:
            tag = package["name"]
        elif limit:
            tag = f"限购{limit}次"
        cells.append(
            {
                "id": package["id"],
                "price": short_yuan(price),
                "bonus": short_yuan(bonus) if bonus else "",
                "tag": tag,
                "hint": (f"{package['name']}：" if named else "") + " · ".join(hint),
            }
        )
    return cells


def _chosen_package(request, cells: list[dict]) -> dict | None:
    """The package carried in ?package=, when it is one on sale (its cell)."""
    text = request.GET.get("package", "")
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return next((cell for cell in cells if cell["id"] == int(text)), None)


def _chosen_amount(request, presets: list[tuple[str, int]]) -> tuple[int | None, str]:
    """The amount carried in ?amount= (fen, and the text for the field: a preset's own text when it is one)."""
    try:
        fen = services.parse_amount(request.GET.get("amount"))
    except services.InvalidAmount:
        return None, ""
    return fen, next((text for text, preset in presets if preset == fen), format_fen(fen))


# What the recharge page says under its button, for each way a browser pays.
PAY_METHOD_LABELS = {
    services.PayMethod.JSAPI: "微信支付",
    services.PayMethod.NATIVE: "微信扫码支付",
    services.PayMethod.H5: "跳转微信支付",
}


@login_required
def recharge(request):
    user = request.user
    # Only while the WeChat in use is not known: known (another account's WeChat, say), the page
    # says so rather than asking WeChat again and again.
    unknown = paying_wechat(request) == UNKNOWN
    if in_wechat(request) and unknown and not request.session.get("wechat_oauth_failed"):
        # Inside WeChat the openid comes silently (snsapi_base), with no click: it binds an
        # account that has none, and says whether this WeChat is the account's.
        return redirect(bind_url(request.get_full_path()))
    if "bound" in request.GET:
        # Back from binding WeChat in the middle of a payment (prepay_answer's bind_url). The
        # person taps pay again rather than being charged by a redirect: a payment starts from
        # a tap made with the amount in sight, and a reload or Back must never start one.
        if user.openid:
            messages.success(request, "微信已绑定。请确认金额，再点一次「立即充值」。")
        query = request.GET.copy()
        query.pop("bound")
        return redirect(request.path + (f"?{query.urlencode()}" if query else ""))
    presets = _presets()
    offers = services.offers_on_sale()
    packages = _package_cells(offers["packages"])
    chosen_package = _chosen_package(request, packages)
    # A package chosen in the link wins over an amount: the amount field stays empty.
    chosen_fen, chosen_text = (None, "") if chosen_package is not None else _chosen_amount(request, presets)
    # The way the prepay endpoint will place this browser's order (docs/paying.md).
    method = services.pay_methods(request)[0]
    response = render(
        request,
        "payments/recharge.html",
        {
            # Packages on sale take the grid; with none, the plain amounts of RECHARGE_PRESETS do.
            "presets": presets,
            "packages": packages,
            "chosen_package": chosen_package,
            "tiers": offers["tiers"],
            "min_fen": settings.RECHARGE_MIN_FEN,
            "max_fen": settings.RECHARGE_MAX_FEN,
            "min_yuan": settings.RECHARGE_MIN_FEN / 100,
            "max_yuan": settings.RECHARGE_MAX_FEN / 100,
            # How this browser pays (docs/paying.md), said under the button; binding WeChat
            # (an openid) matters for JSAPI only.
            "pay_method": method,
            # Inside a WeChat that is not the account's: no JSAPI (WeChat would refuse it), a
            # QR code instead, and the way to sign in as this WeChat.
            "other_wechat": in_wechat(request) and paying_wechat(request) == OTHER,
            "pay_method_label": PAY_METHOD_LABELS[method],
            "on_phone": on_phone(request),
            "bind_url": bind_url(recharge_url(chosen_fen, package=chosen_package["id"] if chosen_package else None)),
            "chosen_fen": chosen_fen,
            "chosen_text": chosen_text,
        },
    )
    # WeChat's H5 page opens only with a Referer on our domain (orders.views.H5_REFERRER_POLICY).
    response.headers["Referrer-Policy"] = H5_REFERRER_POLICY
    return response


def notify_view(api: str, kind: str):
    """The view for one provider's notifies of one kind (payment, refund): record, verify,
    apply (payments/notifies.py); the provider answers WeChat in its own way (v2: SUCCESS or
    FAIL in XML; v3: the HTTP status). payments/urls.py makes one per provider route."""
    source = provider_class(api)

    @csrf_exempt
    @require_POST
    def notify(request) -> HttpResponse:
        body = request.read(wxpay.MAX_XML_BYTES + 1)
        headers = source.notify_headers(request)
        received = notifies.receive_notify(kind, body, request.META.get("REMOTE_ADDR"), api=api, headers=headers)
        return source.answer(received)

    notify.__name__ = notify.__qualname__ = f"{kind}_notify_{api}"
    return notify


# URL path (as in payments/urls.py) -> its notify view.
NOTIFY_VIEWS = {route: notify_view(api, kind) for route, _, api, kind in notify_routes()}

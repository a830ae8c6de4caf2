"""The member's statement (余额明细): every change of their balance, newest first, a page at a
time by keyset (like orders.views.history), each row's detail, and the same list for the
mini program. Read-only: the rows are `orders.models.LedgerEntry`, a spend's and a reversal's
`wallet.models.Charge` and `Reversal` point at theirs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.api import bearer_required
from common.http import json_ok
from common.money import yuan
from common.paging import newest_first
from orders.models import LedgerEntry, Lot, bonus_note
from wallet.models import Charge, Reversal
from wxproto.beijing import beijing_iso

PAGE_SIZE = 20
Kind = LedgerEntry.Kind
# What each kind of row is, in the member's words (LedgerEntry.Kind's labels are the operators').
KIND_TEXT: dict[str, str] = {
    Kind.RECHARGE: "充值",
    Kind.REFUND: "充值退款",
    Kind.REFUND_RETURN: "退款退回",
    Kind.ADJUSTMENT: "余额调整",
    Kind.SPEND: "消费",
    Kind.SPEND_REVERSAL: "消费撤销",
    Kind.BONUS: "赠送",
    Kind.BONUS_REMOVAL: "赠送扣回",
    Kind.BONUS_RETURN: "赠送退回",
    Kind.BONUS_EXPIRY: "赠送过期",
}
ORDER_KINDS: set[str] = {
    Kind.RECHARGE,
    Kind.REFUND,
    Kind.REFUND_RETURN,
    Kind.BONUS,
    Kind.BONUS_REMOVAL,
    Kind.BONUS_RETURN,
    Kind.BONUS_EXPIRY,
}
REFUND_KINDS: set[str] = {Kind.REFUND, Kind.REFUND_RETURN, Kind.BONUS_REMOVAL, Kind.BONUS_RETURN}


# -- the rows ------------------------------------------------------------------------------


def _rows(user):
    """The user's rows, newest first, with what each line shows (no query a row)."""
    return (
        LedgerEntry.objects.filter(user=user).order_by("-created_at", "-pk").select_related("order", "charge", "reversal__charge")
    )


def _charge_of(entry: LedgerEntry) -> Charge | None:
    """The charge a spend row is, or that a reversal row gives back (None for other rows)."""
    try:
        if entry.kind == Kind.SPEND:
            return entry.charge
        if entry.kind == Kind.SPEND_REVERSAL:
            return entry.reversal.charge
    except ObjectDoesNotExist:
        pass
    return None


def _reversal_of(entry: LedgerEntry) -> Reversal | None:
    if entry.kind != Kind.SPEND_REVERSAL:
        return None
    try:
        return entry.reversal
    except ObjectDoesNotExist:
        return None


def _title(entry: LedgerEntry) -> str:
    """The row in words: 充值, 赠送 · 有效期至 <date>, 充值退款, 赠送扣回, 退款退回, 消费 · 一号店,
    消费撤销, 赠送过期, 余额调整 · <reason>."""
    words = KIND_TEXT.get(entry.kind, entry.get_kind_display())
    if entry.kind == Kind.SPEND:
        charge = _charge_of(entry)
        what = (charge.store or charge.description) if charge else entry.reason
        return f"{words} · {what}" if what else words
    if entry.kind in (Kind.ADJUSTMENT, Kind.BONUS) and entry.reason:
        return f"{words} · {entry.reason}"  # a bonus's note: until when it is valid
    return words


def signed_yuan(fen: int) -> str:
    """+¥30.00 for money in, -¥12.50 for money out."""
    return yuan(fen) if fen < 0 else f"+{yuan(fen)}"


def _line(entry: LedgerEntry) -> dict:
    """What a page shows of a row."""
    return {
        "entry": entry,
        "title": _title(entry),
        "amount": signed_yuan(entry.amount),
        "credit": entry.amount > 0,
        "balance_after": yuan(entry.balance_after),
    }


# -- the keyset ----------------------------------------------------------------------------


def _page(user, before: str) -> tuple[list[LedgerEntry], str, bool]:
    """One page of rows `before` the cursor: (rows, the next page's cursor or "", first page?).
    Index (user, -created_at, -id); no COUNT(*) of the whole ledger."""
    return newest_first(_rows(user), before, PAGE_SIZE)


# -- the pages -----------------------------------------------------------------------------


@login_required
def statement(request):
    """余额明细: the balance, then its rows newest first, 20 at a time (更多 / 回到最新)."""
    rows, next_cursor, is_first_page = _page(request.user, request.GET.get("before", ""))
    # The balance as of now, read after the rows: a row that landed meanwhile is in it.
    request.user.refresh_from_db(fields=["balance"])
    return render(
        request,
        "wallet/statement.html",
        {
            "lines": [_line(e) for e in rows],
            "next_cursor": next_cursor,
            "is_first_page": is_first_page,
            "expiring": _next_expiry(request.user) if is_first_page else None,
        },
    )


def _next_expiry(user) -> dict | None:
    """The bonus that expires next (its amount left and its date), so the member sees it before it goes."""
    lot = (
        Lot.objects.filter(user=user, bonus_left__gt=0, bonus_expires_at__isnull=False).order_by("bonus_expires_at", "pk").first()
    )
    if lot is None or lot.bonus_expires_at is None:
        return None
    return {"amount": yuan(lot.bonus_left), "note": bonus_note(lot.bonus_expires_at)}


@login_required
def entry_detail(request, entry_id: int):
    """One row: what it was, how much, the balance after it, when; its order, its charge (with
    the charge's reversals) or the charge it reverses. Owner only (404 otherwise)."""
    entries = LedgerEntry.objects.select_related("order", "refund", "charge", "reversal__charge").prefetch_related(
        Prefetch("charge__reversals", queryset=Reversal.objects.order_by("created_at", "pk"))
    )
    entry = get_object_or_404(entries, user=request.user, pk=entry_id)
    charge = _charge_of(entry)
    return render(
        request,
        "wallet/entry.html",
        {
            **_line(entry),
            "kind_text": KIND_TEXT.get(entry.kind, entry.get_kind_display()),
            "order": entry.order if entry.kind in ORDER_KINDS else None,
            "refund": entry.refund if entry.kind in REFUND_KINDS else None,
            "charge": charge,
            "reversal": _reversal_of(entry),
            # A spend lists its reversals; a reversal's row points at the spend it gives back.
            "reversals": list(charge.reversals.all()) if charge is not None and entry.kind == Kind.SPEND else [],
        },
    )


# -- the mini program ----------------------------------------------------------------------


def _charge_dict(charge: Charge) -> dict:
    return {
        "number": charge.number,
        "store": charge.store,
        "description": charge.description,
        "amount_fen": charge.amount,
        "reversed_fen": charge.reversed_amount,
        "status": str(charge.status),
        "status_text": charge.get_status_display(),
    }


def entry_dict(entry: LedgerEntry) -> dict:
    """The JSON shape of a row (GET /api/mp/statement)."""
    row = {
        "id": entry.pk,
        "kind": entry.kind,
        "kind_text": KIND_TEXT.get(entry.kind, entry.get_kind_display()),
        "amount_fen": entry.amount,
        "balance_after_fen": entry.balance_after,
        "title": _title(entry),
        "created_at": beijing_iso(entry.created_at),
    }
    if entry.kind in ORDER_KINDS and entry.order is not None:
        row["out_trade_no"] = entry.order.out_trade_no
    charge = _charge_of(entry)
    if charge is not None:
        row["charge"] = _charge_dict(charge)
    reversal = _reversal_of(entry)
    if reversal is not None:
        row["reversal"] = {"number": reversal.number, "reason": reversal.reason}
    return row


@require_GET
@bearer_required
def miniprogram_statement(request):
    """`{balance_fen, results, next_before}`: the page's rows, `?before=<next_before>` for the next."""
    rows, next_cursor, _ = _page(request.user, request.GET.get("before", ""))
    request.user.refresh_from_db(fields=["balance"])
    return json_ok(
        {
            "balance_fen": request.user.balance,
            "results": [entry_dict(e) for e in rows],
            "next_before": next_cursor or None,
        }
    )

"""Money for people: integer fen in, text out (¥10.00), and yuan typed by a person read
strictly. WeChat's own amount formats are wxproto.amounts (re-exported here)."""

from __future__ import annotations

import re

from wxproto.amounts import MILLIFEN_PER_FEN, format_fee, format_fen, parse_fen

__all__ = ["MILLIFEN_PER_FEN", "fee_yuan", "format_fee", "format_fen", "parse_fen", "parse_yuan", "yuan"]


def yuan(fen: int | None) -> str:
    """For people: ¥10.00, -¥5.00 (a debit), or "-" for nothing."""
    if fen is None:
        return "-"
    return f"-¥{format_fen(-fen)}" if fen < 0 else f"¥{format_fen(fen)}"


_YUAN = re.compile(r"(-?)([0-9]{1,9})(?:\.([0-9]{1,2}))?")


def parse_yuan(value: object, signed: bool = False) -> int | None:
    """Yuan text typed by a person ("19.9", "-5.00" when signed) to fen; None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _YUAN.fullmatch(value.strip())
    if match is None or (match[1] and not signed):
        return None
    fen = int(match[2]) * 100 + int((match[3] or "0").ljust(2, "0"))
    return -fen if match[1] else fen


def fee_yuan(millifen: int | None) -> str:
    """A fee for people: ¥0.06, ¥0.06123 (the decimals it has beyond the fen), -¥0.02, or "-"."""
    if millifen is None or millifen % MILLIFEN_PER_FEN == 0:
        return yuan(None if millifen is None else millifen // MILLIFEN_PER_FEN)
    text = "¥" + format_fee(abs(millifen)).rstrip("0")
    return f"-{text}" if millifen < 0 else text

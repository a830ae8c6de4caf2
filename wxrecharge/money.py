"""Money in one place: integer fen in, text for people out, WeChat's numeric fields read strictly."""

from __future__ import annotations

import re

# ASCII digits only: str.isdigit() accepts "²", "１９９０" and "١٩٩٠", which int() reads as numbers.
_FEN = re.compile(r"[0-9]{1,15}")


def _decimal(units: int, places: int) -> str:
    """Yuan text for an amount counted in 10**-places yuan: (1990, 2) -> "19.90", (-6000, 5) -> "-0.06000"."""
    sign, units, scale = "-" if units < 0 else "", abs(units), 10**places
    return f"{sign}{units // scale}.{units % scale:0{places}d}"


def format_fen(fen: int) -> str:
    """Yuan text for an amount in fen: 1990 -> "19.90", -500 -> "-5.00"."""
    return _decimal(fen, 2)


def yuan(fen: int | None) -> str:
    """For people: ¥10.00, -¥5.00 (a debit), or "-" for nothing."""
    if fen is None:
        return "-"
    return f"-¥{format_fen(-fen)}" if fen < 0 else f"¥{format_fen(fen)}"


def parse_fen(value: object) -> int | None:
    """A fen count as WeChat sends it ("1990"); None for anything else (signs, spaces, non-ASCII digits)."""
    if isinstance(value, str) and _FEN.fullmatch(value):
        return int(value)
    return None


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


# WeChat's trade bills write fees (手续费, 手续费总金额) to five decimals of a yuan ("0.06000"):
# they are kept exactly, as integer thousandths of a fen (millifen), never as floats.
MILLIFEN_PER_FEN = 1000


def format_fee(millifen: int) -> str:
    """A fee as WeChat's bills write it: 6000 -> "0.06000", -2000 -> "-0.02000"."""
    return _decimal(millifen, 5)


def fee_yuan(millifen: int | None) -> str:
    """A fee for people: ¥0.06, ¥0.06123 (the decimals it has beyond the fen), -¥0.02, or "-"."""
    if millifen is None or millifen % MILLIFEN_PER_FEN == 0:
        return yuan(None if millifen is None else millifen // MILLIFEN_PER_FEN)
    text = "¥" + format_fee(abs(millifen)).rstrip("0")
    return f"-{text}" if millifen < 0 else text

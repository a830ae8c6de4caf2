"""Money in one place: integer fen in, text for people out, WeChat's numeric fields read strictly."""

from __future__ import annotations

import re

# ASCII digits only: str.isdigit() accepts "²", "１９９０" and "١٩٩٠", which int() reads as numbers.
_FEN = re.compile(r"[0-9]{1,15}")


def format_fen(fen: int) -> str:
    """Yuan text for an amount in fen: 1990 -> "19.90", -500 -> "-5.00"."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


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

"""WeChat's amounts: integer fen, yuan text as WeChat writes it, its numeric fields read strictly.

Fees in WeChat's trade bills (手续费, 手续费总金额) have five decimals of a yuan ("0.06000"):
they are counted in thousandths of a fen (millifen), exactly, never as floats.
"""

from __future__ import annotations

import re

MILLIFEN_PER_FEN = 1000
# ASCII digits only: str.isdigit() accepts "²", "１９９０" and "١٩٩٠", which int() reads as numbers.
_FEN = re.compile(r"[0-9]{1,15}")


def _decimal(units: int, places: int) -> str:
    """Yuan text for an amount counted in 10**-places yuan: (1990, 2) -> "19.90", (-6000, 5) -> "-0.06000"."""
    sign, units, scale = "-" if units < 0 else "", abs(units), 10**places
    return f"{sign}{units // scale}.{units % scale:0{places}d}"


def format_fen(fen: int) -> str:
    """Yuan text for an amount in fen: 1990 -> "19.90", -500 -> "-5.00"."""
    return _decimal(fen, 2)


def format_fee(millifen: int) -> str:
    """A fee as WeChat's bills write it: 6000 -> "0.06000", -2000 -> "-0.02000"."""
    return _decimal(millifen, 5)


def parse_fen(value: object) -> int | None:
    """A fen count as WeChat sends it ("1990"); None for anything else (signs, spaces, non-ASCII digits)."""
    if isinstance(value, str) and _FEN.fullmatch(value):
        return int(value)
    return None

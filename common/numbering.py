"""The site's own numbers (退款单号, 消费单号, a form's request number …): a prefix, the Beijing
time to the second, then random digits, so that they sort by time and never repeat in practice
(a unique constraint stands behind each)."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.utils import timezone

from wxproto.beijing import beijing_text


def random_digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def beijing_stamp(now: datetime | None = None) -> str:
    """The Beijing time as 14 digits, yyyyMMddHHmmss."""
    return beijing_text(now or timezone.now(), "%Y%m%d%H%M%S")


def stamped_number(prefix: str, digits: int, now: datetime | None = None) -> str:
    """`prefix` + beijing_stamp + `digits` random digits."""
    return prefix + beijing_stamp(now) + random_digits(digits)

"""URL converters: identifiers in paths match WeChat's format or the URL does not match at all (404)."""

from __future__ import annotations

from django.urls import register_converter


class TradeNoConverter:
    """An out_trade_no: at most 32 letters, digits or `_-|*` (docs/wechat-pay-v2.md#21-unified-order)."""

    regex = r"[A-Za-z0-9_\-|*]{1,32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TradeNoConverter, "trade_no")

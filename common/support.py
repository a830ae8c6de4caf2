"""How users reach the merchant's support (客服): SUPPORT_PHONE, SUPPORT_WECHAT, SUPPORT_URL.

Pages show it with `templates/_support.html` (the `support` context variable); messages
made in code end with `ask()`. With nothing configured both say nothing: a "请联系客服" that
leads nowhere is a dead end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

_TEL = re.compile(r"[^0-9+]")


@dataclass(frozen=True)
class Support:
    phone: str = ""
    wechat: str = ""
    url: str = ""

    def __bool__(self) -> bool:
        return bool(self.phone or self.wechat or self.url)

    @property
    def items(self) -> list[tuple[str, str, str]]:
        """(label, text, link) for each way configured; a link only where a tap can use it."""
        items = []
        if self.phone:
            items.append(("电话", self.phone, "tel:" + _TEL.sub("", self.phone)))
        if self.wechat:
            items.append(("微信", self.wechat, ""))
        if self.url:
            if self.url.startswith(("https://", "http://")):
                items.append(("", "在线客服", self.url))
            else:
                items.append(("在线客服", self.url, ""))
        return items

    def text(self) -> str:
        """The ways in words: "电话 400-800-1234，微信 kefu"."""
        return "，".join(f"{label} {text}" if label else f"{text} {link}" for label, text, link in self.items)


def support() -> Support:
    return Support(settings.SUPPORT_PHONE.strip(), settings.SUPPORT_WECHAT.strip(), settings.SUPPORT_URL.strip())


def ask(lead: str = "") -> str:
    """`lead` + "请联系客服：<the ways>。", or "" when no way is configured."""
    ways = support()
    return f"{lead}请联系客服：{ways.text()}。" if ways else ""

"""What a payment provider is, in our own terms: the records every provider answers with and
the methods the flows call (docs/architecture.md#the-payment-seam).

- `TradeInfo`: a trade's state (WeChat's trade_state names, alike in v2 and v3), amount
  in fen, transaction id, paid time, appid and mchid;
- `RefundInfo`: a refund's state in the books' terms (Refund.Status: each provider maps
  its own words once), amount and refund id;
- `Notify`: a verified notify's kind and content;
- `PayAction`: what the client must do to pay a placed order;
- `WeChatError`: the provider's own code, a normalised `kind` the flows test, whether a
  retry may help, and (v3) the HTTP status and Request-ID.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import BinaryIO

from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from orders.models import Refund
from payments.merchant import Merchant
from payments.models import Notification
from wxproto.beijing import BEIJING
from wxproto.errors import NotifyError, WeChatError  # noqa: F401 (part of a provider's API)

# Normalised error kinds (WeChatError.kind) that the flows act on.
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
ORDER_PAID = "ORDER_PAID"
ORDER_CLOSED = "ORDER_CLOSED"
REFUND_NOT_EXIST = "REFUND_NOT_EXIST"
NO_BILL = "NO_BILL"  # no trade bill for the day, or not yet (v2 "No Bill Exist", v3 NO_STATEMENT_EXIST)


class TradeState(StrEnum):
    """A trade's state at WeChat (trade_state: the same words in v2 and v3)."""

    SUCCESS = "SUCCESS"  # paid
    REFUND = "REFUND"  # paid, then (partly) refunded
    NOTPAY = "NOTPAY"
    USERPAYING = "USERPAYING"
    ACCEPT = "ACCEPT"  # received, waiting to be charged
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    PAYERROR = "PAYERROR"

    @classmethod
    def paid(cls) -> tuple[TradeState, ...]:
        return cls.SUCCESS, cls.REFUND

    @classmethod
    def ended_unpaid(cls) -> tuple[TradeState, ...]:
        """Never to be paid: the order closes here too."""
        return cls.CLOSED, cls.REVOKED, cls.PAYERROR


@dataclass(frozen=True)
class TradeInfo:
    out_trade_no: str
    state: str  # a TradeState (or a word WeChat has added since, kept as it came)
    total: int | None  # fen; None when WeChat's figure is missing or not a plain number
    transaction_id: str = ""
    paid_at: datetime | None = None
    appid: str = ""
    mchid: str = ""

    @property
    def is_paid(self) -> bool:
        return self.state in TradeState.paid()


@dataclass(frozen=True)
class RefundInfo:
    """A refund as the provider reports it, its state in the books' terms (each provider maps
    its own words once); `wechat_state` is the provider's own word, for messages."""

    FINAL = (Refund.Status.SUCCESS, Refund.Status.CLOSED, Refund.Status.ABNORMAL)  # what WeChat may end a refund as

    out_refund_no: str
    state: Refund.Status | None  # None: a word the provider does not document
    wechat_state: str = ""
    refund_id: str = ""
    out_trade_no: str = ""
    amount: int | None = None
    settled_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL


@dataclass(frozen=True)
class Notify:
    kind: str  # "payment" or "refund"
    trade: TradeInfo | None = None
    refund: RefundInfo | None = None
    ignore: str = ""  # a verified notify that reports no payment (v2 result_code=FAIL): why


@dataclass(frozen=True)
class Received:
    """What became of a notify (payments.notifies.receive_notify): its record, None when it
    could not even be recorded, and whether WeChat may stop sending it."""

    log: Notification | None
    acknowledged: bool


@dataclass(frozen=True)
class PayAction:
    """What the client must do to pay an order a provider placed: `jsapi`, call
    getBrandWCPayRequest (or wx.requestPayment) with `params`; `qrcode`, show `url` (Native's
    code_url) as a QR code for WeChat to scan; `redirect`, send the browser to `url` (H5's
    h5_url, with the way back in it)."""

    JSAPI = "jsapi"
    QRCODE = "qrcode"
    REDIRECT = "redirect"

    kind: str
    params: dict[str, str] = field(default_factory=dict)
    url: str = ""


def _beijing_text(value: str | None, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(value or "", fmt).replace(tzinfo=BEIJING)  # Beijing time
    except ValueError:
        return None


def _rfc3339(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _fen(value: object) -> int | None:
    """A JSON amount: a non-negative int (not a bool, not a float, not text)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: object, limit: int = 64) -> str:
    return value[:limit] if isinstance(value, str) else ""


class Provider:
    """What the flows need from a payment provider. Methods raise WeChatError.

    One object per merchant configuration and app, kept by the registry
    (payments.providers.provider), so its HTTP session and keys are made once."""

    name = ""  # the registry's name for it
    api = ""  # the API version its notify URLs carry (v2, v3)
    # A verified notify that cannot be applied, and that a resend cannot change (an unknown
    # order, another merchant's): True when the provider is told it was received, so that it
    # stops sending (v3); False when it keeps being answered FAIL (v2).
    ACKNOWLEDGES_REFUSED = False
    # Where its notifies come: kind (payment, refund) -> (URL path, URL name in "payments:").
    # payments/urls.py routes them, payments/middleware.py takes them the short way.
    NOTIFY_ROUTES: dict[str, tuple[str, str]] = {}

    def __init__(self, merchant: Merchant, appid: str):
        self.merchant, self.appid = merchant, appid

    def prepay(
        self,
        *,
        out_trade_no: str,
        total: int,
        openid: str,
        description: str,
        notify_url: str,
        client_ip: str,
        time_start: datetime,
        time_expire: datetime,
    ) -> str:
        """Place (or place again, same arguments: same answer) a JSAPI order; its prepay_id."""
        raise NotImplementedError

    def prepay_native(
        self,
        *,
        out_trade_no: str,
        total: int,
        description: str,
        notify_url: str,
        client_ip: str,
        time_start: datetime,
        time_expire: datetime,
    ) -> str:
        """Place (or place again) a Native order: its code_url, to show as a QR code."""
        raise NotImplementedError

    def prepay_h5(
        self,
        *,
        out_trade_no: str,
        total: int,
        description: str,
        notify_url: str,
        client_ip: str,
        time_start: datetime,
        time_expire: datetime,
        site_url: str,
        site_name: str,
    ) -> str:
        """Place (or place again) an H5 order from a phone's browser at `client_ip`: its h5_url
        (the way back, redirect_url, is the caller's to add)."""
        raise NotImplementedError

    def pay_params(self, prepay_id: str) -> dict[str, str]:
        """The fields for getBrandWCPayRequest / wx.requestPayment, with paySign."""
        raise NotImplementedError

    def pay_action(self, prepay_id: str) -> PayAction:
        """What the client must do to pay a placed order: today, a JSAPI call with its signed fields."""
        return PayAction(kind=PayAction.JSAPI, params=self.pay_params(prepay_id))

    def query(self, out_trade_no: str) -> TradeInfo:
        raise NotImplementedError

    def close(self, out_trade_no: str) -> None:
        raise NotImplementedError

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, total: int, amount: int, reason: str, notify_url: str
    ) -> RefundInfo:
        raise NotImplementedError

    def query_refund(self, out_refund_no: str) -> RefundInfo:
        raise NotImplementedError

    def download_bill_to(self, day: date, out: BinaryIO) -> None:
        """The trade bill (ALL) of a Beijing day, WeChat's text written to `out` as it arrives,
        never whole in memory (v3: its SHA1 checked and unzipped on the way). WeChatError with
        kind NO_BILL when there is none, or not yet; after any error, what `out` holds is junk."""
        raise NotImplementedError

    def download_bill(self, day: date) -> bytes:
        """`download_bill_to`, held in memory: for a small day (tests, the sandbox's pages)."""
        buffer = io.BytesIO()
        self.download_bill_to(day, buffer)
        return buffer.getvalue()

    def notify_url(self, kind: str) -> str:
        """Where WeChat posts this provider's notifies of `kind` (payment, refund)."""
        return self.merchant.site_url + reverse("payments:" + self.NOTIFY_ROUTES[kind][1])

    NOTIFY_URL_NAMES: dict[str, str] = {}

    # -- notifies: read one, and answer it ----------------------------------------------------
    @classmethod
    def notify_headers(cls, request: HttpRequest) -> dict[str, str]:
        """The headers of a notify that verifying it needs (kept on its record)."""
        return {}

    def parse_notify(self, kind: str, body: bytes, headers: Mapping[str, str], received_at: datetime | None = None) -> Notify:
        """A recorded notify's verified content; NotifyError says why it must not be applied."""
        raise NotImplementedError

    @classmethod
    def answer(cls, received: Received) -> HttpResponse:
        """What WeChat is told about a notify: received (stop sending it), or send it again."""
        raise NotImplementedError

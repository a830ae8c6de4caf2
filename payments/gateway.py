"""One payment interface, two WeChat Pay API versions.

Every flow (services.py, reconcile.py, the views) talks to WeChat Pay through `gateway()`,
which returns the implementation `WECHAT_PAY_API` names: `V2Gateway` wraps wechatpy
(payments/wechat.py), `V3Gateway` our own v3 client (wxproto/v3.py). Both
answer with the same normalised records, so the flows are written once:

- `TradeInfo`: a trade's state (WeChat's trade_state names, alike in v2 and v3), amount
  in fen, transaction id, paid time, appid and mchid;
- `RefundInfo`: a refund's state in the books' terms (PROCESSING, SUCCESS, REFUNDCLOSE,
  CHANGE: v3's CLOSED and ABNORMAL are mapped to the last two), amount and refund id;
- `Notify`: a verified notify's kind and content;
- `WeChatError`: WeChat's own code, a normalised `kind` the flows test, whether a retry
  may help, and (v3) the HTTP status and Request-ID.

Notifies carry their API version in their URL (WeChat posts to the notify_url an order
or refund was placed with), so an order placed under v2 still settles by its v2 notify
after a switch to v3, and both parsers stay available whatever the setting.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings
from django.utils import timezone

from common import wechat as hosts
from common.money import parse_fen
from payments import wechat
from payments.wechat import BEIJING, NotifyError, WeChatError
from wxproto import v3 as v3

logger = logging.getLogger(__name__)

# Normalised error kinds (WeChatError.kind) that the flows act on.
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
ORDER_PAID = "ORDER_PAID"
ORDER_CLOSED = "ORDER_CLOSED"
REFUND_NOT_EXIST = "REFUND_NOT_EXIST"
NO_BILL = "NO_BILL"  # no trade bill for the day, or not yet (v2 "No Bill Exist", v3 NO_STATEMENT_EXIST)
# Refund states in the books' terms.
REFUND_STATES_V3 = {"SUCCESS": "SUCCESS", "CLOSED": "REFUNDCLOSE", "ABNORMAL": "CHANGE", "PROCESSING": "PROCESSING"}


@dataclass(frozen=True)
class TradeInfo:
    out_trade_no: str
    state: str  # SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR
    total: int | None  # fen; None when WeChat's figure is missing or not a plain number
    transaction_id: str = ""
    paid_at: datetime | None = None
    appid: str = ""
    mchid: str = ""

    @property
    def is_paid(self) -> bool:
        return self.state in ("SUCCESS", "REFUND")


@dataclass(frozen=True)
class RefundInfo:
    FINAL = ("SUCCESS", "REFUNDCLOSE", "CHANGE")  # the states that end a refund

    out_refund_no: str
    state: str  # PROCESSING, or one of FINAL
    refund_id: str = ""
    out_trade_no: str = ""
    amount: int | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True)
class Notify:
    kind: str  # "payment" or "refund"
    trade: TradeInfo | None = None
    refund: RefundInfo | None = None
    ignore: str = ""  # a verified notify that reports no payment (v2 result_code=FAIL): why


def answered(exc: WeChatError) -> bool:
    """WeChat answered the request with a refusal (an error code, a protocol fault, or an
    answer whose signature does not verify), rather than the call failing on the way (no
    answer, an unreadable one, an HTTP error without WeChat's code, a success without its
    content): only after such a failure may WeChat have done what was asked."""
    return not (exc.code in ("NETWORK", "BAD_ANSWER") or exc.code.startswith("HTTP_"))


def gateway(channel: str = "jsapi", api: str | None = None) -> Gateway:
    """The payment interface for one app (the 公众号, or the mini program for channel "miniprogram")."""
    appid = settings.WECHAT_MINIPROGRAM_APPID if channel == "miniprogram" else settings.WECHAT_APPID
    api = api or settings.WECHAT_PAY_API
    if api == "v3":
        return V3Gateway(appid)
    if api == "v2":
        return V2Gateway(appid)
    raise WeChatError(f"WECHAT_PAY_API is {api!r}, not v2 or v3", "CONFIG")


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


class Gateway:
    """What the flows need from WeChat Pay. Methods raise WeChatError."""

    api = ""

    def __init__(self, appid: str):
        self.appid = appid

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

    def pay_params(self, prepay_id: str) -> dict[str, str]:
        """The fields for getBrandWCPayRequest / wx.requestPayment, with paySign."""
        raise NotImplementedError

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

    def download_bill(self, day: date) -> bytes:
        """The trade bill (ALL) of a Beijing day as WeChat's text (v3: downloaded, its SHA1
        checked, unzipped). WeChatError with kind NO_BILL when there is none, or not yet."""
        raise NotImplementedError

    def notify_url(self, kind: str) -> str:
        from django.urls import reverse

        names = {
            ("v2", "payment"): "payments:notify",
            ("v2", "refund"): "payments:refund_notify",
            ("v3", "payment"): "payments:notify_v3",
            ("v3", "refund"): "payments:refund_notify_v3",
        }
        return settings.SITE_URL + reverse(names[self.api, kind])


# -- API v2 ------------------------------------------------------------------------------------

V2_KINDS = {
    "ORDERNOTEXIST": ORDER_NOT_EXIST,
    "ORDERPAID": ORDER_PAID,
    "ORDERCLOSED": ORDER_CLOSED,
    "REFUNDNOTEXIST": REFUND_NOT_EXIST,
    "NO_BILL": NO_BILL,
}


class V2Gateway(Gateway):
    api = "v2"

    def __init__(self, appid: str):
        super().__init__(appid)
        self.pay = wechat.Pay(appid)

    def _call(self, method, *args, **kwargs) -> dict[str, str]:
        try:
            return method(*args, **kwargs)
        except WeChatError as exc:
            exc.kind = V2_KINDS.get(exc.code, exc.code)
            raise

    def prepay(self, *, out_trade_no, total, openid, description, notify_url, client_ip, time_start, time_expire):
        answer = self._call(
            self.pay.unified_order,
            out_trade_no=out_trade_no,
            total_fee=total,
            openid=openid,
            body=description,
            notify_url=notify_url,
            client_ip=client_ip,
            time_start=time_start,
            time_expire=time_expire,
        )
        return answer["prepay_id"]

    def pay_params(self, prepay_id):
        return self.pay.jsapi_params(prepay_id)

    def query(self, out_trade_no):
        return self.trade(self._call(self.pay.query_order, out_trade_no))

    @staticmethod
    def trade(fields: Mapping[str, str]) -> TradeInfo:
        return TradeInfo(
            out_trade_no=fields.get("out_trade_no", "")[:64],
            state=fields.get("trade_state", "SUCCESS"),
            total=parse_fen(fields.get("total_fee")),
            transaction_id=fields.get("transaction_id", "")[:64],
            paid_at=_beijing_text(fields.get("time_end"), "%Y%m%d%H%M%S"),
            appid=fields.get("appid", ""),
            mchid=fields.get("mch_id", ""),
        )

    def close(self, out_trade_no):
        self._call(self.pay.close_order, out_trade_no)

    def refund(self, *, out_trade_no, out_refund_no, total, amount, reason, notify_url):
        answer = self._call(
            self.pay.refund,
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            total_fee=total,
            refund_fee=amount,
            description=reason,
            notify_url=notify_url,
        )
        return RefundInfo(
            out_refund_no=out_refund_no,
            state="PROCESSING",
            refund_id=answer.get("refund_id", ""),
            out_trade_no=out_trade_no,
            amount=parse_fen(answer.get("refund_fee")),
        )

    def query_refund(self, out_refund_no):
        answer = self._call(self.pay.query_refund, out_refund_no)
        count = parse_fen(answer.get("refund_count")) or 0
        for n in range(min(count, 50)):
            if answer.get(f"out_refund_no_{n}") == out_refund_no:
                return RefundInfo(
                    out_refund_no=out_refund_no,
                    state=answer.get(f"refund_status_{n}", ""),
                    refund_id=answer.get(f"refund_id_{n}", ""),
                    out_trade_no=answer.get("out_trade_no", ""),
                    amount=parse_fen(answer.get(f"refund_fee_{n}")),
                    settled_at=_beijing_text(answer.get(f"refund_success_time_{n}"), "%Y-%m-%d %H:%M:%S"),
                )
        error = WeChatError(f"refundquery: {out_refund_no} not in the answer", "REFUNDNOTEXIST")
        error.kind = REFUND_NOT_EXIST
        raise error

    def download_bill(self, day):
        return self._call(self.pay.download_bill, day.strftime("%Y%m%d"))

    @staticmethod
    def parse_notify(kind: str, body: bytes) -> Notify:
        """Verify a v2 notify (XML, MD5/HMAC sign; the refund's AES req_info); NotifyError if it must not be applied."""
        if kind == "payment":
            fields = wechat.parse_payment_notify(body)
            if fields.get("return_code") != "SUCCESS" or fields.get("result_code") != "SUCCESS":
                return Notify(kind, trade=V2Gateway.trade(fields), ignore=f"result_code={fields.get('result_code')}")
            return Notify(kind, trade=V2Gateway.trade(fields))
        info = wechat.parse_refund_notify(body)
        return Notify(
            kind,
            refund=RefundInfo(
                out_refund_no=info.get("out_refund_no", "")[:64],
                state=info.get("refund_status", ""),
                refund_id=info.get("refund_id", "")[:64],
                out_trade_no=info.get("out_trade_no", "")[:64],
                amount=parse_fen(info.get("refund_fee")),
                settled_at=_beijing_text(info.get("success_time"), "%Y-%m-%d %H:%M:%S"),
            ),
        )


# -- API v3 ------------------------------------------------------------------------------------

V3_KINDS = {
    "ORDER_NOT_EXIST": ORDER_NOT_EXIST,
    "ORDERPAID": ORDER_PAID,
    "ORDER_PAID": ORDER_PAID,
    "ORDER_CLOSED": ORDER_CLOSED,
    "RESOURCE_NOT_EXISTS": REFUND_NOT_EXIST,
    "NO_STATEMENT_EXIST": NO_BILL,
    "STATEMENT_CREATING": NO_BILL,
}


@functools.lru_cache(maxsize=8)
def _private_key(path: str, mtime: float):
    return v3.load_private_key(Path(path).read_bytes())


@functools.lru_cache(maxsize=8)
def _public_key(path: str, mtime: float):
    return v3.load_public_key(Path(path).read_bytes())


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


# One store per process and configuration: downloaded platform certificates are kept in it.
_key_stores: dict[tuple, v3.KeyStore] = {}


def _key_store(client_factory) -> v3.KeyStore:
    path, key_id = settings.WECHAT_PAY_PUBLIC_KEY, settings.WECHAT_PAY_PUBLIC_KEY_ID
    config = (
        path,
        _mtime(path) if path else 0.0,
        key_id,
        settings.WECHAT_MCH_ID,
        settings.WECHAT_APIV3_KEY,
        hosts.pay_base_url(),
    )
    store = _key_stores.get(config)
    if store is None:
        public_key = _public_key(path, config[1]) if path else None
        store = v3.KeyStore(
            public_key=public_key, public_key_id=key_id if public_key else "", fetch=lambda: client_factory().fetch_certificates()
        )
        _key_stores.clear()
        _key_stores[config] = store
    return store


def v3_client() -> v3.Client:
    """Our v3 client configured from settings (the sandbox's own keys under the sandbox)."""

    def make() -> v3.Client:
        session = requests.Session()
        hosts.mount_transport(session)
        return v3.Client(
            mchid=settings.WECHAT_MCH_ID,
            serial_no=settings.WECHAT_MCH_CERT_SERIAL,
            private_key=_private_key(settings.WECHAT_MCH_PRIVATE_KEY, _mtime(settings.WECHAT_MCH_PRIVATE_KEY)),
            apiv3_key=settings.WECHAT_APIV3_KEY,
            base_url=hosts.pay_base_url(),
            keys=store,
            timeout=settings.WECHAT_HTTP_TIMEOUT,
            session=session,
            public_key_id=settings.WECHAT_PAY_PUBLIC_KEY_ID,
        )

    store = _key_store(make)
    return make()


def _rfc3339_beijing(dt: datetime) -> str:
    return timezone.localtime(dt, BEIJING).replace(microsecond=0).isoformat()


class V3Gateway(Gateway):
    api = "v3"

    def __init__(self, appid: str):
        super().__init__(appid)
        self.client = v3_client()

    def _request(self, method: str, path: str, **kwargs) -> dict | None:
        try:
            return self.client.request(method, path, **kwargs)[1]
        except v3.V3Error as exc:
            # The Request-ID is what WeChat Pay's support asks for: keep it in the message that
            # operators see (a refund's last error, the admin's messages, the logs).
            message = f"{exc} (Request-ID {exc.request_id})" if exc.request_id else str(exc)
            error = WeChatError(message, exc.code, retryable=exc.retryable)
            error.kind = V3_KINDS.get(exc.code, exc.code)
            error.status, error.request_id = exc.status, exc.request_id
            raise error from exc

    def prepay(self, *, out_trade_no, total, openid, description, notify_url, client_ip, time_start, time_expire):
        answer = (
            self._request(
                "POST",
                "/v3/pay/transactions/jsapi",
                body={
                    "appid": self.appid,
                    "mchid": settings.WECHAT_MCH_ID,
                    "description": description,
                    "out_trade_no": out_trade_no,
                    "time_expire": _rfc3339_beijing(time_expire),
                    "notify_url": notify_url,
                    "amount": {"total": total, "currency": "CNY"},
                    "payer": {"openid": openid},
                    "scene_info": {"payer_client_ip": client_ip},
                },
            )
            or {}
        )
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WeChatError("jsapi: the answer has no prepay_id", "BAD_ANSWER", retryable=True)
        return prepay_id

    def pay_params(self, prepay_id):
        params = {
            "appId": self.appid,
            "timeStamp": str(int(time.time())),
            "nonceStr": v3.make_nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        params["paySign"] = v3.pay_sign(
            self.client.private_key, params["appId"], params["timeStamp"], params["nonceStr"], params["package"]
        )
        return params

    def query(self, out_trade_no):
        answer = (
            self._request(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
                query={"mchid": settings.WECHAT_MCH_ID},
            )
            or {}
        )
        return self.trade(answer)

    @staticmethod
    def trade(fields: Mapping) -> TradeInfo:
        amount = fields.get("amount") if isinstance(fields.get("amount"), dict) else {}
        return TradeInfo(
            out_trade_no=_text(fields.get("out_trade_no")),
            state=_text(fields.get("trade_state"), 32),
            total=_fen(amount.get("total")),
            transaction_id=_text(fields.get("transaction_id")),
            paid_at=_rfc3339(fields.get("success_time")),
            appid=_text(fields.get("appid")),
            mchid=_text(fields.get("mchid")),
        )

    def close(self, out_trade_no):
        self._request(
            "POST",
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
            body={"mchid": settings.WECHAT_MCH_ID},
        )

    def refund(self, *, out_trade_no, out_refund_no, total, amount, reason, notify_url):
        answer = (
            self._request(
                "POST",
                "/v3/refund/domestic/refunds",
                body={
                    "out_trade_no": out_trade_no,
                    "out_refund_no": out_refund_no,
                    "reason": reason[:80],
                    "notify_url": notify_url,
                    "amount": {"refund": amount, "total": total, "currency": "CNY"},
                },
            )
            or {}
        )
        return self.refund_info(answer)

    @staticmethod
    def refund_info(fields: Mapping) -> RefundInfo:
        amount = fields.get("amount") if isinstance(fields.get("amount"), dict) else {}
        state = fields.get("status", fields.get("refund_status"))
        return RefundInfo(
            out_refund_no=_text(fields.get("out_refund_no")),
            state=REFUND_STATES_V3.get(state, _text(state, 32)),
            refund_id=_text(fields.get("refund_id")),
            out_trade_no=_text(fields.get("out_trade_no")),
            amount=_fen(amount.get("refund")),
            settled_at=_rfc3339(fields.get("success_time")),
        )

    def query_refund(self, out_refund_no):
        return self.refund_info(self._request("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}") or {})

    def download_bill(self, day):
        answer = (
            self._request(
                "GET", "/v3/bill/tradebill", query={"bill_date": day.isoformat(), "bill_type": "ALL", "tar_type": "GZIP"}
            )
            or {}
        )
        url, hash_type, hash_value = answer.get("download_url"), answer.get("hash_type"), answer.get("hash_value")
        if not (isinstance(url, str) and hash_type == "SHA1" and isinstance(hash_value, str)):
            raise WeChatError("tradebill: the answer has no download_url or SHA1", "BAD_ANSWER", retryable=True)
        try:
            data = self.client.download(url)
        except v3.V3Error as exc:
            raise WeChatError(f"tradebill download: {exc}", exc.code, retryable=exc.retryable) from exc
        try:
            text = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise WeChatError(f"tradebill download: not gzip ({exc})", "BAD_BILL", retryable=True) from exc
        # WeChat's hash_value is the SHA1 of the bill itself (unzipped).
        if not hmac.compare_digest(hashlib.sha1(text).hexdigest(), hash_value.lower()):  # noqa: S324 (WeChat's choice)
            raise WeChatError("tradebill download: the SHA1 does not match", "BAD_BILL", retryable=True)
        return text

    @staticmethod
    def parse_notify(kind: str, headers: Mapping[str, str], body: bytes, received_at: datetime | None = None) -> Notify:
        """Verify, then decrypt a v3 notify. NotifyError says why not, and whether WeChat should send it again.

        The 5-minute window is measured from when the notify was received, so that an
        operator's 重新处理 of a stored notify later checks the same thing."""
        now = received_at.timestamp() if received_at else None
        try:
            envelope, resource = v3_client().parse_notify(headers, body, now=now)
        except v3.SignatureError as exc:
            reason = "签名探测（WECHATPAY/SIGNTEST/），按规定验签失败" if exc.probe else f"签名无效：{exc}"
            raise NotifyError(reason, signature_valid=False) from exc
        except v3.DecryptError as exc:
            # Signed by WeChat, but not for our APIv3 key (or damaged): a retry may bring a good copy.
            raise NotifyError(f"resource 解密失败：{exc}", signature_valid=True) from exc
        except ValueError as exc:
            raise NotifyError(f"通知格式错误：{exc}", signature_valid=True, retry=False) from exc
        numbers = {"out_trade_no": _text(resource.get("out_trade_no")), "out_refund_no": _text(resource.get("out_refund_no"))}
        if settings.WECHAT_MCH_ID != resource.get("mchid"):
            raise NotifyError(f"foreign mchid {_text(resource.get('mchid'))}", signature_valid=True, retry=False, **numbers)
        event = envelope.get("event_type")
        if kind == "payment":
            trade = V3Gateway.trade(resource)
            if trade.appid not in (settings.WECHAT_APPID, settings.WECHAT_MINIPROGRAM_APPID):
                raise NotifyError(f"foreign appid {trade.appid}", signature_valid=True, retry=False, **numbers)
            if event != "TRANSACTION.SUCCESS" or trade.state != "SUCCESS":
                return Notify(kind, trade=trade, ignore=f"event_type={event} trade_state={trade.state}")
            return Notify(kind, trade=trade)
        return Notify(kind, refund=V3Gateway.refund_info(resource))


def parse_notify(api: str, kind: str, body: bytes, headers: Mapping[str, str], received_at: datetime | None = None) -> Notify:
    """A recorded notify's verified content, by the API version it came in with."""
    if api == "v3":
        return V3Gateway.parse_notify(kind, headers, body, received_at)
    return V2Gateway.parse_notify(kind, body)

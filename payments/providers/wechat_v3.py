"""WeChat Pay API v3 as a provider: JSAPI orders, queries, refunds, bills and notifies,
through our own client on cryptography and requests (wxproto/v3.py; docs/wechat-pay-v3.md)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
import zlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import requests
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from common import wechat as hosts
from orders.models import Refund
from payments.merchant import Merchant
from payments.models import Notification
from payments.providers.base import (
    BEIJING,
    NO_BILL,
    ORDER_CLOSED,
    ORDER_NOT_EXIST,
    ORDER_PAID,
    REFUND_NOT_EXIST,
    Notify,
    NotifyError,
    Provider,
    RefundInfo,
    TradeInfo,
    WeChatError,
    _fen,
    _rfc3339,
    _text,
)
from wxproto import v3 as v3

# API v3's refund status words, in the books' terms (docs/wechat-pay-v3.md).
REFUND_STATES = {
    "PROCESSING": Refund.Status.PROCESSING,
    "SUCCESS": Refund.Status.SUCCESS,
    "CLOSED": Refund.Status.CLOSED,
    "ABNORMAL": Refund.Status.ABNORMAL,
}

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


def _key_store(merchant: Merchant, client_factory) -> v3.KeyStore:
    path, key_id = merchant.pay_public_key, merchant.pay_public_key_id
    # Everything the certificate download (client_factory) signs and sends with.
    config = (path, _mtime(path) if path else 0.0, key_id, merchant)
    store = _key_stores.get(config)
    if store is None:
        public_key = _public_key(path, config[1]) if path else None
        store = v3.KeyStore(
            public_key=public_key, public_key_id=key_id if public_key else "", fetch=lambda: client_factory().fetch_certificates()
        )
        _key_stores.clear()
        _key_stores[config] = store
    return store


def v3_client(merchant: Merchant) -> v3.Client:
    """Our v3 client for the merchant's configuration (the sandbox's own keys under the sandbox)."""

    def make() -> v3.Client:
        session = requests.Session()
        hosts.mount_transport(session, merchant.session_hook)
        return v3.Client(
            mchid=merchant.mch_id,
            serial_no=merchant.mch_cert_serial,
            private_key=_private_key(merchant.mch_private_key, _mtime(merchant.mch_private_key)),
            apiv3_key=merchant.apiv3_key,
            base_url=merchant.pay_base_url,
            keys=store,
            timeout=merchant.http_timeout,
            session=session,
            public_key_id=merchant.pay_public_key_id,
        )

    store = _key_store(merchant, make)
    return make()


def _rfc3339_beijing(dt: datetime) -> str:
    return timezone.localtime(dt, BEIJING).replace(microsecond=0).isoformat()


class WeChatV3(Provider):
    """WeChat Pay API v3 (JSAPI), through our own client (wxproto/v3.py)."""

    name, api = "wechat_v3", "v3"
    ACKNOWLEDGES_REFUSED = True  # a 204 stops WeChat; 4xx/5xx make it send again
    NOTIFY_ROUTES = {
        "payment": ("payments/wechat/v3/notify/", "notify_v3"),
        "refund": ("payments/wechat/v3/refund-notify/", "refund_notify_v3"),
    }

    def __init__(self, merchant: Merchant, appid: str):
        super().__init__(merchant, appid)
        self.client = v3_client(merchant)

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
        fields = self._order_fields(out_trade_no, total, description, notify_url, time_expire)
        return self._place(
            "/v3/pay/transactions/jsapi",
            "prepay_id",
            **fields,
            payer={"openid": openid},
            scene_info={"payer_client_ip": client_ip},
        )

    def _place(self, path: str, answer_field: str, **fields) -> str:
        """Place an order (JSAPI, Native, H5); what the answer gives for paying it (prepay_id,
        code_url, h5_url)."""
        answer = self._request("POST", path, body=fields) or {}
        url = answer.get(answer_field)
        if not isinstance(url, str) or not url:
            raise WeChatError(f"{path}: the answer has no {answer_field}", "BAD_ANSWER", retryable=True)
        return url

    def _order_fields(self, out_trade_no, total, description, notify_url, time_expire) -> dict:
        return {
            "appid": self.appid,
            "mchid": self.merchant.mch_id,
            "description": description,
            "out_trade_no": out_trade_no,
            "time_expire": _rfc3339_beijing(time_expire),
            "notify_url": notify_url,
            "amount": {"total": total, "currency": "CNY"},
        }

    def prepay_native(self, *, out_trade_no, total, description, notify_url, client_ip, time_start, time_expire):
        fields = self._order_fields(out_trade_no, total, description, notify_url, time_expire)
        return self._place("/v3/pay/transactions/native", "code_url", **fields, scene_info={"payer_client_ip": client_ip})

    def prepay_h5(self, *, out_trade_no, total, description, notify_url, client_ip, time_start, time_expire, site_url, site_name):
        fields = self._order_fields(out_trade_no, total, description, notify_url, time_expire)
        scene = {"payer_client_ip": client_ip, "h5_info": {"type": "Wap", "app_name": site_name, "app_url": site_url}}
        return self._place("/v3/pay/transactions/h5", "h5_url", **fields, scene_info=scene)

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
                query={"mchid": self.merchant.mch_id},
            )
            or {}
        )
        return self.trade(answer)

    @staticmethod
    def trade(fields: Mapping) -> TradeInfo:
        amount = fields.get("amount")
        amount = amount if isinstance(amount, dict) else {}
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
            body={"mchid": self.merchant.mch_id},
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
        amount = fields.get("amount")
        amount = amount if isinstance(amount, dict) else {}
        state = fields.get("status", fields.get("refund_status"))
        return RefundInfo(
            out_refund_no=_text(fields.get("out_refund_no")),
            state=REFUND_STATES.get(state) if isinstance(state, str) else None,
            wechat_state=_text(state, 32),
            refund_id=_text(fields.get("refund_id")),
            out_trade_no=_text(fields.get("out_trade_no")),
            amount=_fen(amount.get("refund")),
            settled_at=_rfc3339(fields.get("success_time")),
        )

    def query_refund(self, out_refund_no):
        return self.refund_info(self._request("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}") or {})

    def download_bill_to(self, day, out):
        answer = (
            self._request(
                "GET", "/v3/bill/tradebill", query={"bill_date": day.isoformat(), "bill_type": "ALL", "tar_type": "GZIP"}
            )
            or {}
        )
        url, hash_type, hash_value = answer.get("download_url"), answer.get("hash_type"), answer.get("hash_value")
        if not (isinstance(url, str) and hash_type == "SHA1" and isinstance(hash_value, str)):
            raise WeChatError("tradebill: the answer has no download_url or SHA1", "BAD_ANSWER", retryable=True)
        unzipped = _Gunzip(out)
        try:
            self.client.download_to(url, unzipped.write)
        except v3.V3Error as exc:
            error = WeChatError(f"tradebill download: {exc}", exc.code, retryable=exc.retryable)
            error.kind = V3_KINDS.get(exc.code, exc.code)
            raise error from exc
        except zlib.error as exc:
            raise WeChatError(f"tradebill download: not gzip ({exc})", "BAD_BILL", retryable=True) from exc
        if not unzipped.complete:
            raise WeChatError("tradebill download: the gzip stream ends early (cut off)", "BAD_BILL", retryable=True)
        # WeChat's hash_value is the SHA1 of the bill itself (unzipped).
        if not hmac.compare_digest(unzipped.sha1.hexdigest(), hash_value.lower()):
            raise WeChatError("tradebill download: the SHA1 does not match", "BAD_BILL", retryable=True)

    def parse_notify(self, kind, body, headers, received_at=None):
        """Verify, then decrypt a v3 notify. NotifyError says why not, and whether WeChat should send it again.

        The 5-minute window is measured from when the notify was received, so that an
        operator's 重新处理 of a stored notify later checks the same thing."""
        now = received_at.timestamp() if received_at else None
        try:
            envelope, resource = self.client.parse_notify(headers, body, now=now)
        except v3.SignatureError as exc:
            reason = "签名探测（WECHATPAY/SIGNTEST/），按规定验签失败" if exc.probe else f"签名无效：{exc}"
            raise NotifyError(reason, signature_valid=False) from exc
        except v3.DecryptError as exc:
            # Signed by WeChat, but not for our APIv3 key (or damaged): a retry may bring a good copy.
            raise NotifyError(f"resource 解密失败：{exc}", signature_valid=True) from exc
        except ValueError as exc:
            raise NotifyError(f"通知格式错误：{exc}", signature_valid=True, retry=False) from exc
        numbers = {"out_trade_no": _text(resource.get("out_trade_no")), "out_refund_no": _text(resource.get("out_refund_no"))}
        if self.merchant.mch_id != resource.get("mchid"):
            raise NotifyError(f"foreign mchid {_text(resource.get('mchid'))}", signature_valid=True, retry=False, **numbers)
        event = envelope.get("event_type")
        if kind == "payment":
            trade = self.trade(resource)
            if trade.appid not in self.merchant.appids:
                raise NotifyError(f"foreign appid {trade.appid}", signature_valid=True, retry=False, **numbers)
            if event != "TRANSACTION.SUCCESS" or trade.state != "SUCCESS":
                return Notify(kind, trade=trade, ignore=f"event_type={event} trade_state={trade.state}")
            return Notify(kind, trade=trade)
        return Notify(kind, refund=self.refund_info(resource))

    # API v3 notifies (docs/wechat-pay-v3.md#answering-a-notify): the HTTP status is the answer.
    # 204 = received; 4xx/5xx with {"code": "FAIL"} = send it again. A signature that does not
    # verify (a probe included) answers 401, another rejection that a resend may cure 400, a
    # failure of ours 500; a verified notify that cannot be applied and that a resend cannot
    # change (another merchant's, an unknown order, a wrong amount: recorded, an incident
    # opened) is acknowledged, so that WeChat stops.
    SIGNATURE_HEADERS = (
        "Wechatpay-Timestamp",
        "Wechatpay-Nonce",
        "Wechatpay-Signature",
        "Wechatpay-Serial",
        "Wechatpay-Signature-Type",
        "Request-ID",
    )

    # The same headers as the WSGI environ names them: read there, a notify builds no
    # HttpHeaders of all its headers for these six.
    _SIGNATURE_META = tuple(("HTTP_" + name.upper().replace("-", "_"), name) for name in SIGNATURE_HEADERS)

    @classmethod
    def notify_headers(cls, request):
        meta = request.META
        return {name: meta[key][:1024] for key, name in cls._SIGNATURE_META if key in meta}

    @classmethod
    def answer(cls, received):
        if received.acknowledged:
            return HttpResponse(status=204)
        log = received.log
        if log is None or log.outcome == Notification.Outcome.ERROR:
            status = 500
        else:
            status = 401 if log.signature_valid is False else 400
        return JsonResponse({"code": "FAIL", "message": "失败"}, status=status)


class _Gunzip:
    """Unzip a downloaded bill as it arrives (gzip, one member or more) into `out`, with the
    SHA1 of what comes out; `complete` once the stream ended where gzip says it ends."""

    def __init__(self, out):
        self.out = out
        self.sha1 = hashlib.sha1()  # noqa: S324 (WeChat's choice)
        self._unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._started = False

    def write(self, data: bytes) -> None:
        while data:
            self._started = True
            text = self._unzip.decompress(data)
            self.sha1.update(text)
            self.out.write(text)
            data = self._unzip.unused_data
            if self._unzip.eof and data:  # a next gzip member
                self._unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @property
    def complete(self) -> bool:
        return self._started and self._unzip.eof

"""API v2 of WeChat Pay: a thin client on wechatpy's public signing and XML functions and a
requests session of our own, configured from the Merchant (WeChat login is
accounts/wechat_login.py; the hosts, common/wechat.py).

wechatpy (1.8.18) signs each request (`calculate_signature`, or `calculate_signature_hmac`
for HMAC-SHA256) and writes its XML (`dict_to_xml`). The session is ours, so that its
timeout, the merchant certificate for refunds and the sandbox's in-process transport
(common.wechat.mount_transport) are set on it without touching wechatpy's insides. What
we add: the configured sign type everywhere (also the JSAPI `paySign`, which wechatpy only
signs with MD5), answers and notifies verified with a constant-time comparison, untrusted
XML parsed by `wxproto.v2.parse_xml` (no DTDs, no entities, no repeated or nested fields),
and one exception type, `WeChatError`, that carries WeChat's `err_code` and whether a
retry may help.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import BinaryIO, NoReturn

import requests
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac, dict_to_xml

from common.wechat import mount_transport
from payments.merchant import Merchant
from wxproto import v2 as wxpay
from wxproto.beijing import beijing_text
from wxproto.errors import NotifyError, WeChatError

# A bill is read from WeChat and written to disk this much at a time.
BILL_CHUNK_BYTES = 256 * 1024

logger = logging.getLogger(__name__)


def beijing_time(dt: datetime) -> str:
    """WeChat v2's time_start and time_expire: yyyyMMddHHmmss, Beijing."""
    return beijing_text(dt, "%Y%m%d%H%M%S")


class Pay:
    """WeChat Pay v2 for one app (the 公众号 or the mini program) of our merchant account."""

    def __init__(self, merchant: Merchant, appid: str):
        self.merchant, self.appid = merchant, appid
        self.sign_type = merchant.sign_type
        self.session = requests.Session()
        mount_transport(self.session, merchant.session_hook)

    def _post(self, endpoint: str, data: dict[str, str], stream: bool = False) -> requests.Response:
        """Sign `data` (with our mch_id and a nonce) and post it as WeChat's XML; WeChat's raw answer
        (`stream`: its body not read yet)."""
        data = {"appid": self.appid, "mch_id": self.merchant.mch_id, "nonce_str": wxpay.nonce(), **data}
        signer = calculate_signature_hmac if data.get("sign_type") == "HMAC-SHA256" else calculate_signature
        body = dict_to_xml(data, signer(data, self.merchant.api_key)).encode("utf-8")
        cert = (self.merchant.mch_cert, self.merchant.mch_key) if self.merchant.mch_cert and self.merchant.mch_key else None
        response = self.session.post(
            self.merchant.pay_base_url + endpoint,
            data=body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            cert=cert,
            timeout=self.merchant.http_timeout,
            stream=stream,
        )
        response.raise_for_status()
        return response

    # -- merchant API ----------------------------------------------------------------
    def _call(self, endpoint: str, data: dict) -> dict[str, str]:
        data = {"sign_type": self.sign_type, **data}
        started = time.monotonic()
        try:
            response = self._post(endpoint, data)
        except requests.HTTPError as exc:
            raise WeChatError(f"{endpoint}: HTTP error from WeChat", "NETWORK", retryable=True) from exc
        except requests.RequestException as exc:
            raise WeChatError(f"{endpoint}: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc
        finally:
            logger.info("wechat %s %.0fms", endpoint, (time.monotonic() - started) * 1000)
        return self._check_answer(endpoint, response.content)

    def _check_answer(self, endpoint: str, content: bytes) -> dict[str, str]:
        try:
            answer = wxpay.parse_xml(content)
        except wxpay.XMLError as exc:
            raise WeChatError(f"{endpoint}: unreadable answer ({exc})", "NETWORK", retryable=True) from exc
        if answer.get("return_code") != "SUCCESS":
            raise WeChatError(f"{endpoint}: {answer.get('return_msg', '')}", "FAIL")
        if not wxpay.verify(answer, self.merchant.api_key, self.sign_type):
            raise WeChatError(f"{endpoint}: the answer's signature does not verify", "SIGNERROR", retryable=True)
        if answer.get("appid") != self.appid or answer.get("mch_id") != self.merchant.mch_id:
            raise WeChatError(f"{endpoint}: the answer is for another appid or mch_id", "FAIL")
        if answer.get("result_code") != "SUCCESS":
            code = answer.get("err_code") or "FAIL"
            raise WeChatError(f"{endpoint}: {code} {answer.get('err_code_des', '')}".strip(), code)
        return answer

    def unified_order(
        self,
        *,
        out_trade_no: str,
        total_fee: int,
        openid: str,
        body: str,
        notify_url: str,
        client_ip: str,
        time_start: datetime,
        time_expire: datetime,
        trade_type: str = "JSAPI",
        scene_info: str = "",
    ) -> dict[str, str]:
        """统一下单: JSAPI (with the payer's openid), NATIVE (product_id: the order number; the
        answer's code_url) or MWEB (scene_info's h5_info; the answer's mweb_url). The same
        arguments again give WeChat's same answer."""
        fields = {
            "body": body,
            "out_trade_no": out_trade_no,
            "total_fee": str(total_fee),
            "spbill_create_ip": client_ip,
            "notify_url": notify_url,
            "trade_type": trade_type,
            "fee_type": "CNY",
            "time_start": beijing_time(time_start),
            "time_expire": beijing_time(time_expire),
        }
        if trade_type == "JSAPI":
            fields["openid"] = openid
        elif trade_type == "NATIVE":
            fields["product_id"] = out_trade_no  # required for NATIVE; one order is one product here
        elif trade_type == "MWEB":
            fields["scene_info"] = scene_info
        return self._call("pay/unifiedorder", fields)

    def query_order(self, out_trade_no: str) -> dict[str, str]:
        return self._call("pay/orderquery", {"out_trade_no": out_trade_no})

    def close_order(self, out_trade_no: str) -> dict[str, str]:
        return self._call("pay/closeorder", {"out_trade_no": out_trade_no})

    def refund(
        self, *, out_trade_no: str, out_refund_no: str, total_fee: int, refund_fee: int, description: str, notify_url: str
    ) -> dict[str, str]:
        """申请退款 (needs the merchant certificate). The same out_refund_no again never refunds twice."""
        return self._call(
            "secapi/pay/refund",
            {
                "out_trade_no": out_trade_no,
                "out_refund_no": out_refund_no,
                "total_fee": str(total_fee),
                "refund_fee": str(refund_fee),
                "refund_fee_type": "CNY",
                "refund_desc": description[:80],
                "notify_url": notify_url,
            },
        )

    def query_refund(self, out_refund_no: str) -> dict[str, str]:
        """退款查询 of one refund: its state is `refund_status_0`."""
        return self._call("pay/refundquery", {"out_refund_no": out_refund_no})

    def download_bill(self, bill_date: str, out: BinaryIO) -> None:
        """下载对账单 (ALL) of a day (yyyyMMdd): the bill's text written to `out` as it arrives
        (a day of a million trades is hundreds of megabytes: never held whole), or WeChatError
        (`NO_BILL` when there is none, or not yet: "No Bill Exist", "Bill Creating")."""
        endpoint = "pay/downloadbill"
        data = {"sign_type": self.sign_type, "bill_date": bill_date, "bill_type": "ALL"}
        try:
            with self._post(endpoint, data, stream=True) as response:
                chunks = response.iter_content(BILL_CHUNK_BYTES)
                first = next(chunks, b"")
                if first.lstrip().startswith(b"<xml"):  # an error is a short XML answer, not a bill
                    self._bill_refused(endpoint, first + b"".join(chunks))
                out.write(first)
                for chunk in chunks:
                    out.write(chunk)
        except requests.RequestException as exc:
            raise WeChatError(f"{endpoint}: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc

    @staticmethod
    def _bill_refused(endpoint: str, content: bytes) -> NoReturn:
        try:
            answer = wxpay.parse_xml(content)
        except wxpay.XMLError as exc:
            raise WeChatError(f"{endpoint}: unreadable answer ({exc})", "NETWORK", retryable=True) from exc
        message = answer.get("return_msg", "")
        no_bill = message.lower().replace(" ", "") in ("nobillexist", "billcreating") or answer.get("error_code") == "20002"
        raise WeChatError(f"{endpoint}: {message}", "NO_BILL" if no_bill else answer.get("error_code", "FAIL"), retryable=no_bill)

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """The five fields for getBrandWCPayRequest / wx.requestPayment, signed, and paySign."""
        params = {
            "appId": self.appid,
            "timeStamp": str(int(time.time())),
            "nonceStr": wxpay.nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": self.sign_type,
        }
        params["paySign"] = wxpay.sign(params, self.merchant.api_key, self.sign_type)
        return params


def _check_merchant(merchant: Merchant, fields: dict[str, str], content: dict[str, str]) -> None:
    """`fields` name the merchant; `content` (the decrypted req_info of a refund) the order and refund."""
    if fields.get("mch_id") != merchant.mch_id or fields.get("appid") not in merchant.appids:
        raise NotifyError(
            f"foreign appid/mch_id {fields.get('appid')}/{fields.get('mch_id')}",
            signature_valid=True,
            out_trade_no=content.get("out_trade_no", ""),
            out_refund_no=content.get("out_refund_no", ""),
        )


def _api_key(merchant: Merchant) -> str:
    """The v2 API key that authenticates v2 notifies. A merchant on API v3 alone may have none;
    then anyone could sign (or encrypt) with the empty key, so no v2 notify is trusted."""
    if not merchant.api_key:
        raise NotifyError("WECHAT_API_KEY is not set: an API v2 notify cannot be verified", signature_valid=False)
    return merchant.api_key


def parse_payment_notify(merchant: Merchant, body: bytes) -> dict[str, str]:
    """Parse and verify a payment notify; NotifyError says why it must not be applied.

    The signature is checked with the merchant's configured sign type, whatever the
    notify's own `sign_type` says or omits: WeChat has been seen to send HMAC-SHA256
    notifies without it, and an MD5 signature must not pass for an HMAC merchant.
    """
    try:
        fields = wxpay.parse_xml(body)
    except wxpay.XMLError as exc:
        raise NotifyError(f"bad XML: {exc}") from exc
    if not wxpay.verify(fields, _api_key(merchant), merchant.sign_type):
        raise NotifyError("signature does not verify", signature_valid=False)
    _check_merchant(merchant, fields, fields)
    return fields


def parse_refund_notify(merchant: Merchant, body: bytes) -> dict[str, str]:
    """Parse a refund notify and decrypt its `req_info` (it carries no sign: a `req_info`
    that does not decrypt with our key is a forgery). Returns the decrypted fields."""
    try:
        fields = wxpay.parse_xml(body)
    except wxpay.XMLError as exc:
        raise NotifyError(f"bad XML: {exc}") from exc
    if fields.get("return_code") != "SUCCESS":
        raise NotifyError(f"return_code={fields.get('return_code')}", signature_valid=None)
    try:
        info = wxpay.decrypt_req_info(fields.get("req_info", ""), _api_key(merchant))
    except wxpay.XMLError as exc:
        raise NotifyError("req_info does not decrypt with our key", signature_valid=False) from exc
    _check_merchant(merchant, fields, info)
    return info

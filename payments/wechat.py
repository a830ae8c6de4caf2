"""The only code that talks to WeChat: a thin client around wechatpy, configured from settings.

What it adds to wechatpy 1.8.18: the configured sign type everywhere (also the JSAPI
`paySign`, which wechatpy only signs with MD5), answers and notifies verified with a
constant-time comparison, untrusted XML parsed by `wxproto.v2.parse_xml` (no DTDs,
no entities, no repeated or nested fields), and one exception type, `WeChatError`, that
carries WeChat's `err_code` and whether a retry may help.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException, WeChatOAuthException, WeChatPayException
from wechatpy.oauth import WeChatOAuth
from wechatpy.pay import WeChatPay

from wxproto import v2 as wxpay
from wxproto.beijing import BEIJING

logger = logging.getLogger(__name__)

DEFAULT_PAY_BASE_URL = "https://api.mch.weixin.qq.com/"
DEFAULT_OPEN_BASE_URL = "https://open.weixin.qq.com/connect/"
DEFAULT_API_BASE_URL = "https://api.weixin.qq.com/"
# err_codes after which the same request may succeed later (docs/wechat-pay-v2.md#error-codes-the-code-acts-on).
RETRYABLE_CODES = {"SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED", "NETWORK", "45011", "-1"}


class WeChatError(Exception):
    """A call to WeChat failed. `code` is WeChat's err_code (or errcode, or NETWORK/FAIL);
    `kind` the same code normalised across API versions (payments.gateway sets it);
    `status` and `request_id` the HTTP status and Request-ID of a v3 answer."""

    def __init__(self, message: str, code: str = "FAIL", retryable: bool = False):
        super().__init__(message)
        self.code = self.kind = code
        self.retryable = retryable or code in RETRYABLE_CODES
        self.status: int | None = None
        self.request_id = ""


class NotifyError(ValueError):
    """A notify that must not be applied; `signature_valid` says how far it got, `retry`
    whether WeChat sending it again could help (a v3 notify is answered accordingly), and
    the order and refund numbers, when a verified notify was refused after they were read."""

    def __init__(
        self,
        message: str,
        signature_valid: bool | None = None,
        retry: bool = True,
        out_trade_no: str = "",
        out_refund_no: str = "",
    ):
        super().__init__(message)
        self.signature_valid = signature_valid
        self.retry = retry
        self.out_trade_no, self.out_refund_no = out_trade_no, out_refund_no


def mount_transport(session) -> None:
    """Hand the HTTP session of every WeChat client to WECHAT_SESSION_HOOK, if one is set
    (the sandbox's in-process transport: the merchant code knows only base URLs)."""
    if settings.WECHAT_SESSION_HOOK:
        import_string(settings.WECHAT_SESSION_HOOK)(session)


def _base(setting: str, sandbox_path: str, default: str) -> str:
    explicit = getattr(settings, setting)
    if explicit:
        return explicit if explicit.endswith("/") else explicit + "/"
    if settings.WECHAT_SANDBOX:
        return f"{settings.SITE_URL}/sandbox/{sandbox_path}"
    return default


def pay_base_url() -> str:
    return _base("WECHAT_PAY_BASE_URL", "", DEFAULT_PAY_BASE_URL)


def open_base_url() -> str:
    return _base("WECHAT_OPEN_BASE_URL", "connect/", DEFAULT_OPEN_BASE_URL)


def api_base_url() -> str:
    return _base("WECHAT_API_BASE_URL", "", DEFAULT_API_BASE_URL)


class _RawWeChatPay(WeChatPay):
    """wechatpy's transport and request signing; answers come back raw for us to check."""

    def _handle_result(self, res):
        return res


def beijing_time(dt: datetime) -> str:
    return timezone.localtime(dt, BEIJING).strftime("%Y%m%d%H%M%S")


class Pay:
    """WeChat Pay v2 for one app (the 公众号 or the mini program) of our merchant account."""

    def __init__(self, appid: str):
        self.appid = appid
        self.sign_type = settings.WECHAT_SIGN_TYPE
        self._client = _RawWeChatPay(
            self.appid,
            settings.WECHAT_API_KEY,
            settings.WECHAT_MCH_ID,
            mch_cert=settings.WECHAT_MCH_CERT,
            mch_key=settings.WECHAT_MCH_KEY,
            timeout=settings.WECHAT_HTTP_TIMEOUT,
        )
        self._client.API_BASE_URL = pay_base_url()
        mount_transport(self._client._http)

    # -- merchant API ----------------------------------------------------------------
    def _call(self, endpoint: str, data: dict) -> dict[str, str]:
        data = {"appid": self.appid, "sign_type": self.sign_type, **data}
        started = time.monotonic()
        try:
            response = self._client.post(endpoint, data=data)
        except WeChatPayException as exc:  # HTTP status errors, raised by wechatpy's transport
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
        if not wxpay.verify(answer, settings.WECHAT_API_KEY, self.sign_type):
            raise WeChatError(f"{endpoint}: the answer's signature does not verify", "SIGNERROR", retryable=True)
        if answer.get("appid") != self.appid or answer.get("mch_id") != settings.WECHAT_MCH_ID:
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
    ) -> dict[str, str]:
        """统一下单 (JSAPI). The same arguments again give WeChat's same prepay_id."""
        return self._call(
            "pay/unifiedorder",
            {
                "body": body,
                "out_trade_no": out_trade_no,
                "total_fee": str(total_fee),
                "spbill_create_ip": client_ip,
                "notify_url": notify_url,
                "trade_type": "JSAPI",
                "openid": openid,
                "fee_type": "CNY",
                "time_start": beijing_time(time_start),
                "time_expire": beijing_time(time_expire),
            },
        )

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

    def download_bill(self, bill_date: str) -> bytes:
        """下载对账单 (ALL) of a day (yyyyMMdd): the bill's text, or WeChatError (`NO_BILL` when
        there is none, or not yet: "No Bill Exist", "Bill Creating")."""
        endpoint = "pay/downloadbill"
        data = {"appid": self.appid, "sign_type": self.sign_type, "bill_date": bill_date, "bill_type": "ALL"}
        try:
            response = self._client.post(endpoint, data=data)
        except (WeChatPayException, requests.RequestException) as exc:
            raise WeChatError(f"{endpoint}: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc
        content = response.content
        if content.lstrip().startswith(b"<xml"):
            try:
                answer = wxpay.parse_xml(content)
            except wxpay.XMLError as exc:
                raise WeChatError(f"{endpoint}: unreadable answer ({exc})", "NETWORK", retryable=True) from exc
            message = answer.get("return_msg", "")
            no_bill = message.lower().replace(" ", "") in ("nobillexist", "billcreating") or answer.get("error_code") == "20002"
            raise WeChatError(
                f"{endpoint}: {message}", "NO_BILL" if no_bill else answer.get("error_code", "FAIL"), retryable=no_bill
            )
        return content

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """The five fields for getBrandWCPayRequest / wx.requestPayment, signed, and paySign."""
        params = {
            "appId": self.appid,
            "timeStamp": str(int(time.time())),
            "nonceStr": wxpay.nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": self.sign_type,
        }
        params["paySign"] = wxpay.sign(params, settings.WECHAT_API_KEY, self.sign_type)
        return params


def _check_merchant(fields: dict[str, str], content: dict[str, str]) -> None:
    """`fields` name the merchant; `content` (the decrypted req_info of a refund) the order and refund."""
    if fields.get("mch_id") != settings.WECHAT_MCH_ID or fields.get("appid") not in (
        settings.WECHAT_APPID,
        settings.WECHAT_MINIPROGRAM_APPID,
    ):
        raise NotifyError(
            f"foreign appid/mch_id {fields.get('appid')}/{fields.get('mch_id')}",
            signature_valid=True,
            out_trade_no=content.get("out_trade_no", ""),
            out_refund_no=content.get("out_refund_no", ""),
        )


def _api_key() -> str:
    """The v2 API key that authenticates v2 notifies. A merchant on API v3 alone may have none;
    then anyone could sign (or encrypt) with the empty key, so no v2 notify is trusted."""
    if not settings.WECHAT_API_KEY:
        raise NotifyError("WECHAT_API_KEY is not set: an API v2 notify cannot be verified", signature_valid=False)
    return settings.WECHAT_API_KEY


def parse_payment_notify(body: bytes) -> dict[str, str]:
    """Parse and verify a payment notify; NotifyError says why it must not be applied.

    The signature is checked with the merchant's configured sign type, whatever the
    notify's own `sign_type` says or omits: WeChat has been seen to send HMAC-SHA256
    notifies without it, and an MD5 signature must not pass for an HMAC merchant.
    """
    try:
        fields = wxpay.parse_xml(body)
    except wxpay.XMLError as exc:
        raise NotifyError(f"bad XML: {exc}") from exc
    if not wxpay.verify(fields, _api_key(), settings.WECHAT_SIGN_TYPE):
        raise NotifyError("signature does not verify", signature_valid=False)
    _check_merchant(fields, fields)
    return fields


def parse_refund_notify(body: bytes) -> dict[str, str]:
    """Parse a refund notify and decrypt its `req_info` (it carries no sign: a `req_info`
    that does not decrypt with our key is a forgery). Returns the decrypted fields."""
    try:
        fields = wxpay.parse_xml(body)
    except wxpay.XMLError as exc:
        raise NotifyError(f"bad XML: {exc}") from exc
    if fields.get("return_code") != "SUCCESS":
        raise NotifyError(f"return_code={fields.get('return_code')}", signature_valid=None)
    try:
        info = wxpay.decrypt_req_info(fields.get("req_info", ""), _api_key())
    except wxpay.XMLError as exc:
        raise NotifyError("req_info does not decrypt with our key", signature_valid=False) from exc
    _check_merchant(fields, info)
    return info


# -- WeChat login (used by accounts) ------------------------------------------------------


class _OAuth(WeChatOAuth):
    """wechatpy's WeChatOAuth sets no timeout of its own."""

    def _request(self, method, url_or_endpoint, **kwargs):
        kwargs.setdefault("timeout", settings.WECHAT_HTTP_TIMEOUT)
        return super()._request(method, url_or_endpoint, **kwargs)


def oauth(redirect_uri: str, state: str) -> WeChatOAuth:
    client = _OAuth(settings.WECHAT_APPID, settings.WECHAT_APP_SECRET, redirect_uri, "snsapi_base", state)
    client.API_BASE_URL = api_base_url()
    client.OAUTH_BASE_URL = open_base_url()
    mount_transport(client._http)
    return client


def authorize_url(redirect_uri: str, state: str) -> str:
    return oauth(redirect_uri, state).authorize_url


def mini_program_session(js_code: str) -> dict[str, str]:
    """code2session: {openid, session_key}. The session_key must stay on the server."""
    client = WeChatClient(
        settings.WECHAT_MINIPROGRAM_APPID,
        settings.WECHAT_MINIPROGRAM_SECRET,
        access_token="unused-by-jscode2session",
        timeout=settings.WECHAT_HTTP_TIMEOUT,
    )
    client.wxa.API_BASE_URL = api_base_url()
    mount_transport(client._http)
    try:
        return client.wxa.code_to_session(js_code)
    except WeChatClientException as exc:
        raise WeChatError(
            f"jscode2session: {exc.errcode}", str(exc.errcode) if exc.errcode else "NETWORK", retryable=exc.errcode is None
        ) from exc
    except requests.RequestException as exc:
        raise WeChatError(f"jscode2session: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc


def oauth_identity(code: str) -> tuple[str, str | None]:
    """Exchange a 网页授权 code for (openid, unionid), server side (the secret stays here). The unionid is there only
    when WeChat gives one (the 公众号 linked to an open-platform account), else None."""
    try:
        answer = oauth("", "").fetch_access_token(code)
    except WeChatOAuthException as exc:
        raise WeChatError(
            f"oauth: {exc.errcode} {exc.errmsg}", str(exc.errcode) if exc.errcode else "NETWORK", retryable=exc.errcode is None
        ) from exc
    except requests.RequestException as exc:
        raise WeChatError(f"oauth: {exc.__class__.__name__}", "NETWORK", retryable=True) from exc
    return answer["openid"], answer.get("unionid") or None

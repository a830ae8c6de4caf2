"""WeChat Pay API v3 (docs/wechat-pay-v3.md#4-endpoints), as WeChat authenticates, checks and answers it.

Mounted under the sandbox's prefix: the merchant's base URL is `{SITE_URL}/sandbox/` and
the path after it is WeChat's (`/v3/pay/transactions/jsapi`, ...). The request is signed
over that path: the sandbox's mount prefix (from reverse("sandbox:index")) is removed
from the path and query as received before the signature is checked.

Every request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,
signature=…,timestamp=…,serial_no=…`, verified with the merchant's public key; a missing
or malformed header, an unknown mchid, another serial_no, a timestamp more than 5 minutes
off or a signature that does not verify answer `401 SIGN_ERROR`. Every answer, errors and
204s included, carries `Request-ID` and WeChat's signature headers (key chosen by
SANDBOX_V3_KEY_MODE, devtools/wechat_sandbox/conf.py). With the corrupt_signature switch on for the trade
a request concerns, the answer's signature is one character off; the systemerror_endpoints
names of v2 (unifiedorder, orderquery, closeorder, refund, refundquery) make the v3
equivalents answer `500 SYSTEM_ERROR`.

Codes chosen where WeChat's documents are silent or vague:
- A body that is not a JSON object: `400 PARAM_ERROR` ("请求体不是合法的JSON对象").
- A `mchid` in the body or query other than the signer's: `400 PARAM_ERROR`.
- jsapi, native and h5 for an order already paid: `403 ORDERPAID`; for a closed one:
  `400 ORDER_CLOSED`; the same out_trade_no with other parameters (another trade_type
  included): `403 OUT_TRADE_NO_USED`.
- h5 without scene_info, its payer_client_ip, h5_info or h5_info.type: `400 PARAM_ERROR` in
  WeChat's field wording; with the h5_no_auth switch on: `403 NO_AUTH`.
- Closing a paid order: `403 ORDERPAID` (v3's close lists no code for it; v2's closeorder
  answers ORDERPAID, and v3 gives ORDERPAID that status elsewhere); closing a closed order:
  `400 ORDER_CLOSED`, as v3's error list has it.
- Refunds: an unknown order `404 RESOURCE_NOT_EXISTS`; an order not paid (or closed)
  `403 TRADE_ERROR`; amount.total other than the order's `400 PARAM_ERROR`; more than is
  left to refund `400 INVALID_REQUEST` (NOT_ENOUGH is the merchant's balance running short,
  which never happens here); the 51st refund of an order `403 RULE_LIMIT`; an order paid
  more than a year ago `400 INVALID_REQUEST`; an out_refund_no again with another amount,
  or already used for another order, `400 INVALID_REQUEST`.
- `GET /v3/certificates` for a merchant in public-key mode: `404 RESOURCE_NOT_EXISTS`
  "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥…", what WeChat has answered
  merchants onboarded since late 2024 (reported by SDK users from November 2024).
- A method the path does not take: `405 METHOD_NOT_ALLOWED`; a /v3/ path the sandbox does
  not serve: `404 NOT_FOUND`; both signed like the rest.
- `GET /v3/bill/tradebill` (beyond the six endpoints asked for, since the merchant's
  reconciliation uses it): the text of devtools/wechat_sandbox/bills.py, as v2's downloadbill has it. A
  day without trades is `400 NO_STATEMENT_EXIST`; the bill is ready at once (WeChat's is
  ready after 10:00 the next day, answering `400 STATEMENT_CREATING` before: the sandbox
  answers that only while the bill_not_ready switch is on). Its `download_url` is good
  for 30 seconds and needs a signed GET; the file it answers is not signed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from devtools.wechat_sandbox import bills, conf, merchant_api, services, v3sign
from devtools.wechat_sandbox.merchants import Merchant, merchant
from devtools.wechat_sandbox.models import V3, Fault, Refund, Trade

logger = logging.getLogger(__name__)

OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
NOTIFY_URL = re.compile(r"^https?://[^/?#\s]+[^?#\s]*$")
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
MAX_FEN = 10**12 - 1  # v2's total_fee takes at most 12 digits
CLOCK_SKEW_SECONDS = 5 * 60
MAX_REFUNDS = 50
REFUND_WINDOW = timedelta(days=365)

AUTH_FORMAT = "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》"
# What WeChat answers a merchant without the product it orders (seen in answers to merchants).
NO_H5 = "商户号该产品权限未开通，请前往商户平台>产品中心检查后重试"
SYSTEM_ERROR = "系统异常，请用相同参数重新调用"
NO_CERTIFICATE = (
    "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。"
    "可查看指引https://pay.weixin.qq.com/docs/merchant/products/platform-certificate/wxp-pub-key-guide.html"
)


class V3Error(Exception):
    """An error answer: HTTP status and WeChat's {"code", "message"} (and `detail`)."""

    def __init__(self, status: int, code: str, message: str, detail: dict | None = None):
        super().__init__(code)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def answer(self) -> dict:
        answer = {"code": self.code, "message": self.message}
        if self.detail is not None:
            answer["detail"] = self.detail
        return answer


def sign_error(message: str) -> V3Error:
    return V3Error(401, "SIGN_ERROR", message)


# --- PARAM_ERROR in WeChat's words: 输入源“/body/amount/total”映射到值字段“总金额”… ---------------


def param_error(location: str, path: str, label: str, rule: str, value=None) -> V3Error:
    detail = {"location": location, "field": path}
    if value is not None:
        detail["value"] = value
    return V3Error(400, "PARAM_ERROR", f"输入源“/{location}/{path}”映射到值字段“{label}”{rule}", detail)


REQUIRED = "必填性规则校验失败，此字段为必填项"


def _value(data: dict, path: str):
    value = data
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def text(
    data: dict,
    path: str,
    label: str,
    *,
    required: bool = True,
    max_length: int | None = None,
    pattern: re.Pattern | None = None,
    location: str = "body",
) -> str:
    value = _value(data, path)
    if value is None or value == "":
        if required:
            raise param_error(location, path, label, REQUIRED)
        return ""
    if not isinstance(value, str):
        raise param_error(location, path, label, "类型校验失败，此字段须为字符串", value)
    if max_length is not None and len(value) > max_length:
        raise param_error(location, path, label, f"字符串规则校验失败，长度 {len(value)}，大于最大值 {max_length}", value)
    if pattern is not None and not pattern.match(value):
        raise param_error(location, path, label, "字符串规则校验失败，格式不正确", value)
    return value


def positive_int(data: dict, path: str, label: str) -> int:
    value = _value(data, path)
    if value is None:
        raise param_error("body", path, label, REQUIRED)
    if not isinstance(value, int) or isinstance(value, bool):
        raise param_error("body", path, label, "类型校验失败，此字段须为整数（分）", value)
    if value < 1:
        raise param_error("body", path, label, "数值规则校验失败，须大于0", value)
    if value > MAX_FEN:
        raise param_error("body", path, label, f"数值规则校验失败，须不大于{MAX_FEN}", value)
    return value


def obj(data: dict, path: str, label: str) -> dict:
    value = _value(data, path)
    if value is None:
        raise param_error("body", path, label, REQUIRED)
    if not isinstance(value, dict):
        raise param_error("body", path, label, "类型校验失败，此字段须为对象")
    return value


def currency(data: dict, path: str, *, required: bool) -> str:
    value = text(data, path, "货币类型", required=required) or "CNY"
    if value != "CNY":
        raise param_error("body", path, "货币类型", "枚举值校验失败，仅支持CNY", value)
    return value


def rfc3339(data: dict, path: str, label: str) -> datetime | None:
    value = text(data, path, label, required=False)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value:
        raise param_error("body", path, label, "时间格式校验失败，须为 RFC 3339 格式，如 2018-06-08T10:34:56+08:00", value)
    return parsed


def notify_url(data: dict, *, required: bool) -> str:
    value = text(data, "notify_url", "通知地址", required=required, max_length=255)
    if value and not NOTIFY_URL.match(value):
        raise param_error("body", "notify_url", "通知地址", "字符串规则校验失败，须为不带参数的完整网址", value)
    return value


def same_merchant(mchid: str, mch: Merchant, location: str = "body") -> None:
    if mchid != mch.mch_id:
        raise param_error(location, "mchid", "直连商户号", "与请求签名的商户号不一致", mchid)


# --- authentication and signed answers -------------------------------------------------------


def signed_path(request: HttpRequest) -> str:
    """The path and query the merchant signed: as received, without the sandbox's prefix."""
    full = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or request.get_full_path()
    if "://" in full:  # an absolute-form request target
        parts = urlsplit(full)
        full = parts.path + (f"?{parts.query}" if parts.query else "")
    prefix = reverse("sandbox:index").rstrip("/")
    return full[len(prefix) :] if full.startswith(prefix + "/") else full


def authenticate(request: HttpRequest, body: bytes) -> Merchant:
    """WeChat's check of `Authorization`; raises 401 SIGN_ERROR."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        raise sign_error("Http头缺少Authorization或格式错误，请参考《微信支付商户REST API签名规则》")
    try:
        items = v3sign.parse_authorization(header)
    except v3sign.AuthorizationError as exc:
        raise sign_error(AUTH_FORMAT) from exc
    if not TIMESTAMP.match(items["timestamp"]):
        raise sign_error(AUTH_FORMAT)
    mch = merchant(items["mchid"])
    if mch is None:
        raise sign_error("商户号mchid不存在或与证书不匹配")
    keys = conf.v3_keys()
    if items["serial_no"].upper() != keys.merchant_serial.upper():
        raise sign_error("商户证书序列号有误。请使用签名私钥匹配的证书序列号")
    if abs(time.time() - int(items["timestamp"])) > CLOCK_SKEW_SECONDS:
        raise sign_error("请求时间戳与当前时间相差不得超过5分钟")
    message = v3sign.request_message(request.method, signed_path(request), items["timestamp"], items["nonce_str"], body)
    if not v3sign.verify(keys.merchant_public_key, message, items["signature"]):
        raise sign_error("错误的签名，验签失败")
    return mch


def request_id() -> str:
    return secrets.token_hex(23).upper() + "-0"


def respond(request: HttpRequest, status: int, answer: dict | None, fault: Fault | None) -> HttpResponse:
    """An answer signed as WeChat signs them: over the exact body bytes (empty for a 204)."""
    body = b"" if answer is None else services.to_json(answer).encode("utf-8")
    response = HttpResponse(body, status=status)
    if answer is None:
        del response["Content-Type"]
    else:
        response["Content-Type"] = "application/json; charset=utf-8"
    signer = services.answer_signer(request.headers.get("Wechatpay-Serial", ""))
    for name, value in signer.headers(body, corrupt=bool(fault and fault.corrupt_signature)).items():
        response[name] = value
    response["Request-ID"] = request_id()
    return response


@dataclass
class Call:
    """One authenticated request: its merchant, JSON body (empty for GET), URL arguments."""

    request: HttpRequest
    mch: Merchant
    body: dict
    kwargs: dict
    fault: Fault = field(default_factory=Fault)


def parse_body(raw: bytes) -> dict:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的JSON对象，请检查请求体格式") from exc
    if not isinstance(data, dict):
        raise V3Error(400, "PARAM_ERROR", "请求体不是合法的JSON对象，请检查请求体格式")
    return data


def endpoint(method: str, v2_name: str, trade_of: Callable[[Call], str | None]) -> Callable:
    """Wrap handler(call) -> (status, answer or None) in WeChat's checks and signed answers.

    `v2_name` is the endpoint's name in the systemerror_endpoints switch; `trade_of` tells
    which trade a call concerns, for the fault switches.
    """

    def decorate(handler: Callable[[Call], tuple[int, dict | None]]):
        @csrf_exempt
        def view(request, **kwargs):
            fault = None
            try:
                if request.method != method:
                    raise V3Error(405, "METHOD_NOT_ALLOWED", f"请求方法不正确，该接口只接受{method}")
                raw = request.body
                mch = authenticate(request, raw)
                call = Call(request, mch, parse_body(raw) if method == "POST" else {}, kwargs)
                fault = call.fault = Fault.effective(trade_of(call))
                if fault.errors_on(v2_name):
                    raise V3Error(500, "SYSTEM_ERROR", SYSTEM_ERROR)
                status, answer = handler(call)
            except V3Error as exc:
                status, answer = exc.status, exc.answer()
            except Exception:
                logger.exception("sandbox v3 %s failed", handler.__name__)
                status, answer = 500, {"code": "SYSTEM_ERROR", "message": SYSTEM_ERROR}
            return respond(request, status, answer, fault)

        view.__name__ = handler.__name__
        return view

    return decorate


# --- trades ---------------------------------------------------------------------------------


def _str(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _trade_by_transaction_id(mch: Merchant, transaction_id) -> str | None:
    if not _str(transaction_id):
        return None
    return Trade.objects.filter(mch_id=mch.mch_id, transaction_id=transaction_id).values_list("out_trade_no", flat=True).first()


def _identity(**params) -> str:
    """What must match for a repeated jsapi call to get the same prepay_id."""
    return hashlib.sha256(("v3:" + json.dumps(params, sort_keys=True, ensure_ascii=False)).encode()).hexdigest()


def _order_fields(body: dict, call: Call) -> dict:
    """The fields every v3 order takes (jsapi, native, h5), checked as WeChat checks them."""
    fields: dict = {"appid": text(body, "appid", "应用ID", max_length=32)}
    same_merchant(text(body, "mchid", "直连商户号", max_length=32), call.mch)
    fields["description"] = text(body, "description", "商品描述", max_length=127)
    fields["out_trade_no"] = text(body, "out_trade_no", "商户订单号", pattern=OUT_TRADE_NO)
    fields["time_expire"] = rfc3339(body, "time_expire", "交易结束时间")
    fields["attach"] = text(body, "attach", "附加数据", required=False, max_length=128)
    fields["notify_url"] = notify_url(body, required=True)
    obj(body, "amount", "订单金额")
    fields["total"] = positive_int(body, "amount/total", "总金额")
    currency(body, "amount/currency", required=False)
    return fields


def _check_app_and_time(body: dict, call: Call, fields: dict, now: datetime) -> None:
    if fields["appid"] not in call.mch.appids:
        raise V3Error(400, "APPID_MCHID_NOT_MATCH", "AppID和mch_id不匹配")
    time_expire = fields["time_expire"]
    if time_expire is not None and time_expire < now + timedelta(minutes=1):
        raise param_error("body", "time_expire", "交易结束时间", "时间规则校验失败，距当前时间至少1分钟", body["time_expire"])


def _place(call: Call, trade_type: str, fields: dict, now: datetime, **extra) -> Trade:
    """Place the order, or find the one placed before with the same parameters (a new prepay_id
    once the old has lived 2 hours); ORDERPAID, ORDER_CLOSED or OUT_TRADE_NO_USED as WeChat
    answers. `extra` are columns of the trade beyond the common fields (openid, scene_info).
    A NATIVE or MWEB trade gets a new pay link at every call (services.issue_pay_link)."""
    time_expire = fields["time_expire"]
    digest = _identity(
        appid=fields["appid"],
        description=fields["description"],
        attach=fields["attach"],
        notify_url=fields["notify_url"],
        total=fields["total"],
        openid=extra.get("openid", ""),
        goods_tag=fields.get("goods_tag", ""),
        time_expire=time_expire.isoformat() if time_expire else "",
        # a JSAPI digest stays what it was before the other trade types came
        **({"trade_type": trade_type} if trade_type != Trade.JSAPI else {}),
    )
    for _ in range(2):  # a second pass after losing a race on the unique out_trade_no
        with transaction.atomic():
            trade = Trade.objects.select_for_update().filter(mch_id=call.mch.mch_id, out_trade_no=fields["out_trade_no"]).first()
            if trade is not None:
                if trade.is_paid:
                    raise V3Error(403, "ORDERPAID", "该订单已支付")
                if trade.state in (Trade.CLOSED, Trade.REVOKED):
                    raise V3Error(400, "ORDER_CLOSED", "订单已关闭")
                if trade.params_digest != digest:
                    raise V3Error(403, "OUT_TRADE_NO_USED", "商户订单号重复，请求参数与首次请求时不一致")
                if trade.prepay_expires_at <= now:
                    trade.prepay_id = services.new_prepay_id()
                    trade.prepay_expires_at = now + services.PREPAY_TTL
                    trade.save(update_fields=["prepay_id", "prepay_expires_at"])
            else:
                try:
                    with transaction.atomic():
                        trade = Trade.objects.create(
                            mch_id=call.mch.mch_id,
                            appid=fields["appid"],
                            out_trade_no=fields["out_trade_no"],
                            params_digest=digest,
                            body=fields["description"],
                            attach=fields["attach"],
                            total_fee=fields["total"],
                            trade_type=trade_type,
                            notify_url=fields["notify_url"],
                            sign_type="RSA",
                            time_expire=time_expire,
                            api_version=V3,
                            prepay_id=services.new_prepay_id(),
                            prepay_expires_at=now + services.PREPAY_TTL,
                            **extra,
                        )
                except IntegrityError:
                    continue
            if trade_type in services.PAY_LINK_TTL:
                services.issue_pay_link(trade, now)
            return trade
    raise V3Error(500, "SYSTEM_ERROR", SYSTEM_ERROR)


@endpoint("POST", "unifiedorder", lambda call: _str(call.body.get("out_trade_no")))
def jsapi(call: Call) -> tuple[int, dict]:
    """JSAPI下单 (公众号 and 小程序): 200 {"prepay_id"}; the same out_trade_no with the same
    parameters gets the same prepay_id (a new one once the old has lived 2 hours)."""
    body = call.body
    fields = _order_fields(body, call)
    obj(body, "payer", "支付者")
    openid = text(body, "payer/openid", "用户标识", max_length=128)
    fields["goods_tag"] = text(body, "goods_tag", "订单优惠标记", required=False, max_length=32)
    now = timezone.now()
    _check_app_and_time(body, call, fields, now)
    trade = _place(call, Trade.JSAPI, fields, now, openid=openid)
    return 200, {"prepay_id": trade.prepay_id}


@endpoint("POST", "unifiedorder", lambda call: _str(call.body.get("out_trade_no")))
def native(call: Call) -> tuple[int, dict]:
    """Native下单 (scan to pay): 200 {"code_url"}, a link to the sandbox's phone page
    (services.pay_link) valid 2 hours; no payer: whoever scans first pays. Ordering again with
    the same parameters gives a new code_url and the old one stops working."""
    body = call.body
    fields = _order_fields(body, call)
    fields["goods_tag"] = text(body, "goods_tag", "订单优惠标记", required=False, max_length=32)
    if _value(body, "scene_info") is not None:
        obj(body, "scene_info", "场景信息")
        text(body, "scene_info/payer_client_ip", "用户终端IP", max_length=45)
    now = timezone.now()
    _check_app_and_time(body, call, fields, now)
    trade = _place(call, Trade.NATIVE, fields, now)
    return 200, {"code_url": services.pay_link(trade)}


H5_TYPES = ("iOS", "Android", "Wap")


@endpoint("POST", "unifiedorder", lambda call: _str(call.body.get("out_trade_no")))
def h5(call: Call) -> tuple[int, dict]:
    """H5下单 (a phone's browser outside WeChat): 200 {"h5_url"}, the sandbox's H5 middle page
    (services.pay_link) valid 5 minutes. scene_info {payer_client_ip, h5_info {type (iOS,
    Android or Wap), app_name, app_url}} is required; a merchant without the H5 product (the
    h5_no_auth switch) gets 403 NO_AUTH. The trade is MWEB, as v3 names H5 in queries and bills."""
    body = call.body
    fields = _order_fields(body, call)
    fields["goods_tag"] = text(body, "goods_tag", "订单优惠标记", required=False, max_length=32)
    obj(body, "scene_info", "场景信息")
    payer_ip = text(body, "scene_info/payer_client_ip", "用户终端IP", max_length=45)
    obj(body, "scene_info/h5_info", "H5场景信息")
    kind = text(body, "scene_info/h5_info/type", "场景类型", max_length=32)
    if kind not in H5_TYPES:
        raise param_error("body", "scene_info/h5_info/type", "场景类型", "枚举值校验失败，仅支持iOS、Android、Wap", kind)
    h5_info = {"type": kind}
    for name, label, length in (("app_name", "应用名称", 64), ("app_url", "网站URL", 128)):
        value = text(body, f"scene_info/h5_info/{name}", label, required=False, max_length=length)
        if value:
            h5_info[name] = value
    if call.fault.h5_no_auth:
        raise V3Error(403, "NO_AUTH", NO_H5)
    now = timezone.now()
    _check_app_and_time(body, call, fields, now)
    trade = _place(call, Trade.MWEB, fields, now, scene_info={"payer_client_ip": payer_ip, "h5_info": h5_info})
    return 200, {"h5_url": services.pay_link(trade)}


def _order_not_exist() -> V3Error:
    return V3Error(404, "ORDER_NOT_EXIST", "订单不存在")


def _query(call: Call, **lookup) -> tuple[int, dict]:
    """查询订单, by either of its numbers: the trade as v3 describes it, or 404 ORDER_NOT_EXIST."""
    same_merchant(text(call.request.GET, "mchid", "直连商户号", location="query"), call.mch, "query")
    trade = Trade.objects.filter(mch_id=call.mch.mch_id, **lookup).first()
    if trade is None:
        raise _order_not_exist()
    return 200, services.v3_transaction(trade, call.fault)


@endpoint("GET", "orderquery", lambda call: call.kwargs["out_trade_no"])
def query_by_out_trade_no(call: Call) -> tuple[int, dict]:
    return _query(call, out_trade_no=call.kwargs["out_trade_no"])


@endpoint("GET", "orderquery", lambda call: _trade_by_transaction_id(call.mch, call.kwargs["transaction_id"]))
def query_by_transaction_id(call: Call) -> tuple[int, dict]:
    return _query(call, transaction_id=call.kwargs["transaction_id"])


@endpoint("POST", "closeorder", lambda call: call.kwargs["out_trade_no"])
def close(call: Call) -> tuple[int, None]:
    """关闭订单: 204 and an empty (signed) body."""
    same_merchant(text(call.body, "mchid", "直连商户号"), call.mch)
    with transaction.atomic():
        trade = Trade.objects.select_for_update().filter(mch_id=call.mch.mch_id, out_trade_no=call.kwargs["out_trade_no"]).first()
        if trade is None:
            raise _order_not_exist()
        if trade.is_paid:
            raise V3Error(403, "ORDERPAID", "订单已支付，不能关闭")
        if trade.state in (Trade.CLOSED, Trade.REVOKED):
            raise V3Error(400, "ORDER_CLOSED", "订单已关闭")
        trade.state = Trade.CLOSED
        trade.save(update_fields=["state"])
    return 204, None


# --- refunds --------------------------------------------------------------------------------


def _refund_trade_of(call: Call) -> str | None:
    return _str(call.body.get("out_trade_no")) or _trade_by_transaction_id(call.mch, call.body.get("transaction_id"))


@endpoint("POST", "refund", _refund_trade_of)
def refund(call: Call) -> tuple[int, dict]:
    """退款申请: accepted as PROCESSING and answered at once; it settles later (the delivery
    worker, or a refund query that finds it due), and its notify goes out then.

    The trade's row lock serialises refunds of one trade, so their total never exceeds
    the amount paid and one out_refund_no never refunds twice.
    """
    body = call.body
    out_refund_no = text(body, "out_refund_no", "商户退款单号", pattern=OUT_REFUND_NO)
    transaction_id = text(body, "transaction_id", "微信支付订单号", required=False, max_length=32)
    out_trade_no = text(body, "out_trade_no", "商户订单号", required=False, max_length=32)
    if not transaction_id and not out_trade_no:
        raise V3Error(400, "PARAM_ERROR", "transaction_id和out_trade_no必须二选一进行传参")
    reason = text(body, "reason", "退款原因", required=False, max_length=80)
    url = notify_url(body, required=False)
    obj(body, "amount", "金额信息")
    refund_fee = positive_int(body, "amount/refund", "退款金额")
    total = positive_int(body, "amount/total", "原订单金额")
    currency(body, "amount/currency", required=True)
    now = timezone.now()
    with transaction.atomic():
        trades = Trade.objects.select_for_update().filter(mch_id=call.mch.mch_id)
        trade = (
            trades.filter(transaction_id=transaction_id) if transaction_id else trades.filter(out_trade_no=out_trade_no)
        ).first()
        if trade is None:
            raise V3Error(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        existing = Refund.objects.filter(trade__mch_id=call.mch.mch_id, out_refund_no=out_refund_no).first()
        if existing is not None:
            if existing.trade_id != trade.pk:
                raise V3Error(400, "INVALID_REQUEST", "商户退款单号已用于其他订单")
            if existing.refund_fee != refund_fee:
                raise V3Error(400, "INVALID_REQUEST", "同一商户退款单号的退款金额与之前请求不一致")
            return 200, services.v3_refund(existing)
        if not trade.is_paid:
            state = "已关闭" if trade.state in (Trade.CLOSED, Trade.REVOKED) else "未支付"
            raise V3Error(403, "TRADE_ERROR", f"订单{state}，不能退款")
        if total != trade.total_fee:
            raise param_error("body", "amount/total", "原订单金额", "与订单的支付金额不一致", total)
        if trade.time_end and trade.time_end < now - REFUND_WINDOW:
            raise V3Error(400, "INVALID_REQUEST", "订单已超过可退款的最大期限（支付后一年内）")
        if trade.refunds.count() >= MAX_REFUNDS:
            raise V3Error(403, "RULE_LIMIT", f"该订单的退款次数已达上限（{MAX_REFUNDS}次）")
        if refund_fee > trade.total_fee - trade.refunded_fee:
            raise V3Error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        new = Refund.objects.create(
            trade=trade,
            out_refund_no=out_refund_no,
            refund_id=services.new_refund_id(),
            refund_fee=refund_fee,
            notify_url=url,
            reason=reason,
            api_version=V3,
            settle_at=now + services.refund_settle_delay(),
        )
        trade.refunded_fee += refund_fee
        trade.state = Trade.REFUND
        trade.save(update_fields=["refunded_fee", "state"])
    return 200, services.v3_refund(new)


def _refund_query_trade_of(call: Call) -> str | None:
    return (
        Refund.objects.filter(trade__mch_id=call.mch.mch_id, out_refund_no=call.kwargs["out_refund_no"])
        .values_list("trade__out_trade_no", flat=True)
        .first()
    )


@endpoint("GET", "refundquery", _refund_query_trade_of)
def refund_query(call: Call) -> tuple[int, dict]:
    """查询单笔退款: a refund that is due settles first, so that the answer and the refund
    notify tell the same outcome (settle_refund is a no-op if the worker got there first)."""
    refunds = Refund.objects.select_related("trade").filter(
        trade__mch_id=call.mch.mch_id, out_refund_no=call.kwargs["out_refund_no"]
    )
    found = refunds.order_by("created_at").first()
    if found is None:
        raise V3Error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    if found.is_due():
        services.settle_refund(found.pk)
        found = refunds.get(pk=found.pk)
    return 200, services.v3_refund(found)


# --- platform certificates ------------------------------------------------------------------


@endpoint("GET", "certificates", lambda call: None)
def certificates(call: Call) -> tuple[int, dict]:
    """下载平台证书: the platform certificate, encrypted with the APIv3 key; refused to a
    merchant that has only the 微信支付公钥."""
    if conf.v3_key_mode() == conf.PUBLIC_KEY:
        raise V3Error(404, "RESOURCE_NOT_EXISTS", NO_CERTIFICATE)
    keys = conf.v3_keys()
    certificate = keys.platform_certificate
    encrypted = v3sign.encrypt(keys.apiv3_key, keys.platform_certificate_pem.encode(), "certificate")
    return 200, {
        "data": [
            {
                "serial_no": keys.platform.serial,
                "effective_time": services.rfc3339(certificate.not_valid_before_utc),
                "expire_time": services.rfc3339(certificate.not_valid_after_utc),
                "encrypt_certificate": encrypted,
            }
        ]
    }


# --- trade bills ----------------------------------------------------------------------------

BILL_TOKEN_SALT = "sandbox.v3.billdownload"
BILL_URL_SECONDS = 30
BILL_TYPES = ("ALL", "SUCCESS", "REFUND")


@endpoint("GET", "downloadbill", lambda call: None)
def tradebill(call: Call) -> tuple[int, dict]:
    """申请交易账单: {hash_type: SHA1, hash_value (of the bill unzipped), download_url}."""
    query = call.request.GET
    value = text(query, "bill_date", "账单日期", location="query")
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=services.BEIJING)  # Beijing day
    except ValueError as exc:
        raise param_error("query", "bill_date", "账单日期", "时间格式校验失败，须为 YYYY-MM-DD", value) from exc
    bill_type = text(query, "bill_type", "账单类型", required=False) or "ALL"
    if bill_type not in BILL_TYPES:
        raise param_error("query", "bill_type", "账单类型", "枚举值校验失败，仅支持ALL、SUCCESS、REFUND", bill_type)
    tar_type = text(query, "tar_type", "压缩类型", required=False)
    if tar_type not in ("", "GZIP"):
        raise param_error("query", "tar_type", "压缩类型", "枚举值校验失败，仅支持GZIP", tar_type)
    bill = _bill_text(call.mch, day, bill_type)
    token = signing.dumps({"d": value, "t": bill_type, "z": tar_type}, salt=BILL_TOKEN_SALT, compress=True)
    url = call.request.build_absolute_uri(reverse("sandbox:v3_billdownload")) + "?token=" + token
    return 200, {
        "hash_type": "SHA1",
        "hash_value": hashlib.sha1(bill).hexdigest(),  # noqa: S324 (WeChat's choice)
        "download_url": url,
    }


def _bill_text(mch: Merchant, day: datetime, bill_type: str) -> bytes:
    """The day's bill (devtools/wechat_sandbox/bills.py, the same text as v2's), or WeChat's 400 when there is none."""
    try:
        return bills.bill_text(mch.mch_id, merchant_api._bill_appid(mch), day.date(), bill_type).encode("utf-8")
    except bills.NotReady as exc:
        raise V3Error(400, "STATEMENT_CREATING", "账单生成中") from exc
    except bills.NoBill as exc:
        raise V3Error(400, "NO_STATEMENT_EXIST", "账单文件不存在，请检查当前商户号在指定日期内是否有成功的交易") from exc


@csrf_exempt
def billdownload(request):
    """下载账单: the bill (gzip when asked), after a signed GET; the file itself is not signed."""
    try:
        if request.method != "GET":
            raise V3Error(405, "METHOD_NOT_ALLOWED", "请求方法不正确，该接口只接受GET")
        mch = authenticate(request, request.body)
        try:
            params = signing.loads(request.GET.get("token", ""), salt=BILL_TOKEN_SALT, max_age=BILL_URL_SECONDS)
        except signing.BadSignature as exc:
            raise V3Error(400, "INVALID_REQUEST", "下载链接已失效，请重新申请账单") from exc
        day = datetime.strptime(params["d"], "%Y-%m-%d").replace(tzinfo=services.BEIJING)
        bill = _bill_text(mch, day, params["t"])
    except V3Error as exc:
        return respond(request, exc.status, exc.answer(), None)
    response = HttpResponse(
        gzip.compress(bill, mtime=0) if params["z"] == "GZIP" else bill, content_type="application/octet-stream"
    )
    response["Request-ID"] = request_id()
    return response


@csrf_exempt
def not_found(request, rest: str = ""):
    """A /v3/ path the sandbox does not serve: WeChat's JSON 404, signed."""
    return respond(request, 404, {"code": "NOT_FOUND", "message": "请求的资源不存在"}, None)

"""WeChat Pay's merchant API (docs/wechat-pay-v2.md#2-merchant-api), as WeChat validates and answers it.

Protocol faults (not POST, empty or bad XML, missing fields, a bad sign, an unknown
merchant) answer `return_code=FAIL` with WeChat's `return_msg` and no sign. Business
faults answer `return_code=SUCCESS, result_code=FAIL` with `err_code`, signed. With the
corrupt_signature switch on for the trade a request concerns, every signed answer about
it carries a wrong sign, which the merchant must refuse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from devtools.wechat_sandbox import bills, services
from devtools.wechat_sandbox.merchants import Merchant, merchant
from devtools.wechat_sandbox.models import Fault, Refund, Trade
from wxproto import v2 as wxpay

logger = logging.getLogger(__name__)

OUT_TRADE_NO = re.compile(r"^[A-Za-z0-9_\-|*]{1,32}$")
OUT_REFUND_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
FEE = re.compile(r"^[1-9][0-9]{0,11}$")
TRADE_TYPES = ("JSAPI", "NATIVE", "APP", "MWEB")
# Parameters that must match for a repeated unifiedorder to get the same prepay_id.
IDENTITY_FIELDS = (
    "appid",
    "body",
    "detail",
    "attach",
    "fee_type",
    "total_fee",
    "notify_url",
    "trade_type",
    "openid",
    "time_expire",
    "goods_tag",
    "limit_pay",
    "product_id",
    "device_info",
)


class ReturnFail(Exception):
    """return_code=FAIL: the request itself was refused."""


class BusinessError(Exception):
    """result_code=FAIL with WeChat's err_code."""

    def __init__(self, code: str, description: str):
        super().__init__(code)
        self.code, self.description = code, description


def _xml(fields: dict) -> HttpResponse:
    return HttpResponse(wxpay.to_xml(fields), content_type="text/xml; charset=utf-8")


def _read_body(request) -> bytes:
    if request.method != "POST":
        raise ReturnFail("请使用post方法")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > wxpay.MAX_XML_BYTES:
        raise ReturnFail("XML格式错误")
    return request.read(wxpay.MAX_XML_BYTES + 1)


def _parse(body: bytes) -> dict[str, str]:
    try:
        return wxpay.parse_xml(body)
    except wxpay.XMLError as exc:
        text = str(exc)
        if text == "empty body":
            raise ReturnFail("post数据为空") from exc
        if text == "not UTF-8":
            raise ReturnFail("编码格式错误") from exc
        raise ReturnFail("XML格式错误") from exc


def endpoint(name: str, required: tuple[str, ...]) -> Callable:
    """Wrap a handler(params, merchant, fault) -> dict of answer fields in WeChat's checks."""

    def decorate(handler: Callable[[dict, Merchant, Fault], dict]):
        @csrf_exempt
        def view(request):
            params: dict[str, str] = {}
            mch = None
            fault = None
            sign_type = wxpay.MD5
            try:
                params = _parse(_read_body(request))
                if not params.get("sign"):
                    raise ReturnFail("签名错误")
                for field in required:
                    if not params.get(field):
                        raise ReturnFail(f"缺少参数{field}")
                mch = merchant(params.get("mch_id"))
                if mch is None:
                    raise ReturnFail("mch_id参数格式错误")
                sign_type = params.get("sign_type") or wxpay.MD5
                if sign_type not in wxpay.SIGN_TYPES:
                    raise ReturnFail("sign_type参数格式错误")
                if not wxpay.verify(params, mch.api_key, sign_type):
                    raise ReturnFail("签名错误")
                if params.get("appid") not in mch.appids:
                    raise ReturnFail("appid和mch_id不匹配")
                fault = Fault.effective(_out_trade_no_of(params, mch))
                if fault.errors_on(name):
                    raise BusinessError("SYSTEMERROR", "系统错误")
                answer = {"result_code": "SUCCESS", **handler(params, mch, fault)}
            except ReturnFail as exc:
                return _xml({"return_code": "FAIL", "return_msg": str(exc)})
            except BusinessError as exc:
                answer = {"result_code": "FAIL", "err_code": exc.code, "err_code_des": exc.description}
            except Exception:
                logger.exception("sandbox %s failed", name)
                answer = {"result_code": "FAIL", "err_code": "SYSTEMERROR", "err_code_des": "系统错误"}
            fields = {
                "return_code": "SUCCESS",
                "return_msg": "OK",
                "appid": params.get("appid"),
                "mch_id": mch.mch_id if mch else None,
                "nonce_str": wxpay.nonce(),
                **answer,
            }
            fields = {k: v for k, v in fields.items() if v not in (None, "")}
            if mch is not None:
                fields["sign"] = wxpay.sign(fields, mch.api_key, sign_type)
                if fault is not None and fault.corrupt_signature:
                    fields["sign"] = services.corrupted(fields["sign"])
            return _xml(fields)

        view.__name__ = handler.__name__
        return view

    return decorate


def _out_trade_no_of(params: dict, mch: Merchant) -> str | None:
    """The trade a request concerns, for its fault switches: its out_trade_no, or the trade
    found by transaction_id, refund_id or out_refund_no (orderquery and refundquery)."""
    if params.get("out_trade_no"):
        return params["out_trade_no"]
    trades = Trade.objects.filter(mch_id=mch.mch_id)
    if params.get("transaction_id"):
        trades = trades.filter(transaction_id=params["transaction_id"])
    elif params.get("refund_id"):
        trades = trades.filter(refunds__refund_id=params["refund_id"])
    elif params.get("out_refund_no"):
        trades = trades.filter(refunds__out_refund_no=params["out_refund_no"])
    else:
        return None
    return trades.values_list("out_trade_no", flat=True).first()


def _find_trade(params: dict, mch: Merchant, lock: bool = False) -> Trade:
    trades = Trade.objects.filter(mch_id=mch.mch_id)
    if lock:
        trades = trades.select_for_update()
    if params.get("transaction_id"):
        trade = trades.filter(transaction_id=params["transaction_id"]).first()
    elif params.get("out_trade_no"):
        trade = trades.filter(out_trade_no=params["out_trade_no"]).first()
    else:
        raise ReturnFail("缺少参数out_trade_no")
    if trade is None:
        raise BusinessError("ORDERNOTEXIST", "订单不存在")
    return trade


def _parse_time_expire(value: str) -> datetime:
    try:
        naive = datetime.strptime(value, "%Y%m%d%H%M%S")  # Beijing time, made aware below
    except ValueError as exc:
        raise BusinessError("PARAM_ERROR", "time_expire参数格式错误") from exc
    return naive.replace(tzinfo=services.BEIJING)


@endpoint(
    "unifiedorder",
    ("appid", "mch_id", "nonce_str", "body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type"),
)
def unifiedorder(params: dict, mch: Merchant, fault: Fault) -> dict:
    """统一下单 for every trade_type: JSAPI needs openid; NATIVE needs product_id and answers a
    code_url; MWEB (H5) needs scene_info's h5_info, answers an mweb_url, and answers NOAUTH while
    the h5_no_auth switch is on. The same out_trade_no with the same parameters gets the same
    prepay_id (and a new pay link, the old one dying)."""
    if not OUT_TRADE_NO.match(params["out_trade_no"]):
        raise BusinessError("PARAM_ERROR", "out_trade_no参数格式错误，最长32位，仅限字母、数字和_-|*")
    if not FEE.match(params["total_fee"]):
        raise BusinessError("PARAM_ERROR", "total_fee参数格式错误，须为正整数（分）")
    if params["trade_type"] not in TRADE_TYPES:
        raise BusinessError("PARAM_ERROR", "trade_type参数格式错误")
    if params["trade_type"] == Trade.JSAPI and not params.get("openid"):
        raise BusinessError("PARAM_ERROR", "JSAPI支付必须传openid")
    if params["trade_type"] == Trade.NATIVE and not params.get("product_id"):
        raise BusinessError("PARAM_ERROR", "NATIVE支付必须传product_id")
    scene_info = {}
    if params["trade_type"] == Trade.MWEB:
        scene_info = _h5_scene_info(params.get("scene_info", ""))
        if fault.h5_no_auth:
            raise BusinessError("NOAUTH", "商户无此接口权限")
    notify_url = params["notify_url"]
    if not re.match(r"^https?://[^/?#\s]+[^?#\s]*$", notify_url):
        raise BusinessError("PARAM_ERROR", "notify_url参数格式错误，须为不带参数的完整网址")
    time_expire = _parse_time_expire(params["time_expire"]) if params.get("time_expire") else None
    now = timezone.now()
    if time_expire is not None and time_expire < now + timedelta(minutes=1):
        raise BusinessError("PARAM_ERROR", "time_expire时间过短，至少1分钟")
    digest = hashlib.sha256(json.dumps({f: params.get(f, "") for f in IDENTITY_FIELDS}, sort_keys=True).encode()).hexdigest()
    for _ in range(2):  # a second pass after losing a race on the unique out_trade_no
        with transaction.atomic():
            trade = Trade.objects.select_for_update().filter(mch_id=mch.mch_id, out_trade_no=params["out_trade_no"]).first()
            if trade is not None:
                if trade.is_paid:
                    raise BusinessError("ORDERPAID", "该订单已支付")
                if trade.state in (Trade.CLOSED, Trade.REVOKED):
                    raise BusinessError("ORDERCLOSED", "该订单已关闭")
                if trade.params_digest != digest:
                    raise BusinessError("INVALID_REQUEST", "201 商户订单号重复")
                if trade.prepay_expires_at <= now:
                    trade.prepay_id = services.new_prepay_id()
                    trade.prepay_expires_at = now + services.PREPAY_TTL
                    trade.save(update_fields=["prepay_id", "prepay_expires_at"])
                return _ordered(trade, now)
            try:
                with transaction.atomic():
                    trade = Trade.objects.create(
                        mch_id=mch.mch_id,
                        appid=params["appid"],
                        out_trade_no=params["out_trade_no"],
                        params_digest=digest,
                        body=params["body"][:128],
                        attach=params.get("attach", "")[:127],
                        total_fee=int(params["total_fee"]),
                        trade_type=params["trade_type"],
                        openid=params.get("openid", ""),
                        notify_url=notify_url,
                        sign_type=params.get("sign_type") or wxpay.MD5,
                        time_expire=time_expire,
                        scene_info=scene_info,
                        prepay_id=services.new_prepay_id(),
                        prepay_expires_at=now + services.PREPAY_TTL,
                    )
            except IntegrityError:
                continue
            return _ordered(trade, now)
    raise BusinessError("SYSTEMERROR", "系统繁忙，请用相同参数重试")


# The pay link a unified order answers besides prepay_id, by trade_type.
LINK_FIELD = {Trade.NATIVE: "code_url", Trade.MWEB: "mweb_url"}


def _ordered(trade: Trade, now: datetime) -> dict:
    """The answer to a unified order: trade_type and prepay_id, and for NATIVE a new code_url,
    for MWEB a new mweb_url (services.issue_pay_link). Called under the trade's row lock."""
    answer = {"trade_type": trade.trade_type, "prepay_id": trade.prepay_id}
    if trade.trade_type in LINK_FIELD:
        answer[LINK_FIELD[trade.trade_type]] = services.issue_pay_link(trade, now)
    return answer


H5_TYPES = {"Wap": "wap_url", "IOS": "app_name", "Android": "app_name"}


def _h5_scene_info(text: str) -> dict:
    """scene_info of an MWEB order: JSON {"h5_info": {"type": "Wap", "wap_url", "wap_name"}} (or
    type IOS / Android with app_name and bundle_id / package_name), as WeChat's H5 document asks;
    PARAM_ERROR otherwise. WeChat's own wording of these refusals is not published."""
    if not text:
        raise BusinessError("PARAM_ERROR", "H5支付必须传scene_info")
    try:
        scene = json.loads(text)
    except ValueError as exc:
        raise BusinessError("PARAM_ERROR", "scene_info参数格式错误，须为JSON") from exc
    h5_info = scene.get("h5_info") if isinstance(scene, dict) else None
    if not isinstance(h5_info, dict):
        raise BusinessError("PARAM_ERROR", "scene_info参数格式错误，H5支付须上报h5_info")
    kind = h5_info.get("type")
    required = H5_TYPES.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise BusinessError("PARAM_ERROR", "scene_info参数格式错误，h5_info.type须为Wap、IOS或Android")
    if not isinstance(h5_info.get(required), str) or not h5_info[required].strip():
        raise BusinessError("PARAM_ERROR", f"scene_info参数格式错误，h5_info缺少{required}")
    return {"h5_info": h5_info}


TRADE_STATE_DESC = services.TRADE_STATE_DESC


@endpoint("orderquery", ("appid", "mch_id", "nonce_str"))
def orderquery(params: dict, mch: Merchant, fault: Fault) -> dict:
    trade = _find_trade(params, mch)
    fault = Fault.effective(trade.out_trade_no)
    answer = {
        "trade_state": trade.state,
        "trade_state_desc": TRADE_STATE_DESC[trade.state],
        "out_trade_no": trade.out_trade_no,
        "attach": trade.attach,
    }
    if trade.is_paid:
        answer.update(services.trade_fields(trade, fault))
    else:
        answer["total_fee"] = str(trade.total_fee)
    return answer


@endpoint("closeorder", ("appid", "mch_id", "nonce_str", "out_trade_no"))
def closeorder(params: dict, mch: Merchant, fault: Fault) -> dict:
    with transaction.atomic():
        trade = _find_trade(params, mch, lock=True)
        if trade.is_paid:
            raise BusinessError("ORDERPAID", "订单已支付，不能发起关单")
        if trade.state in (Trade.CLOSED, Trade.REVOKED):
            raise BusinessError("ORDERCLOSED", "订单已关闭，无需继续调用")
        # WeChat asks merchants to wait 5 minutes before closing, but has no error code for
        # it and accepts the call (docs/wechat-pay-v2.md#23-closing-an-order): so does the sandbox.
        trade.state = Trade.CLOSED
        trade.save(update_fields=["state"])
    return {}


@endpoint("refund", ("appid", "mch_id", "nonce_str", "out_refund_no", "total_fee", "refund_fee"))
def refund(params: dict, mch: Merchant, fault: Fault) -> dict:
    """申请退款: accepted as PROCESSING and answered at once; it settles later (the delivery
    worker, or a refundquery that finds it due), and its notify goes out then.

    The trade's row lock serialises refunds of one trade, so their total never exceeds
    total_fee and one out_refund_no never refunds twice.
    """
    if not OUT_REFUND_NO.match(params["out_refund_no"]):
        raise BusinessError("PARAM_ERROR", "out_refund_no参数格式错误")
    if not FEE.match(params["total_fee"]):
        raise BusinessError("PARAM_ERROR", "total_fee参数格式错误，须为正整数（分）")
    if not FEE.match(params["refund_fee"]):
        raise BusinessError("PARAM_ERROR", "refund_fee参数格式错误，退款金额须为正整数（分）")
    refund_fee = int(params["refund_fee"])
    with transaction.atomic():
        trade = _find_trade(params, mch, lock=True)
        existing = trade.refunds.filter(out_refund_no=params["out_refund_no"]).first()
        if existing is not None:
            if existing.refund_fee != refund_fee:
                raise BusinessError("INVALID_REQUEST", "同一out_refund_no的退款金额与之前请求不一致")
            return _refund_answer(trade, existing)
        if not trade.is_paid:
            raise BusinessError("TRADE_STATE_ERROR", "订单状态错误，未支付的订单不能退款")
        if int(params["total_fee"]) != trade.total_fee:
            raise BusinessError("PARAM_ERROR", "订单金额与支付金额不一致")
        if refund_fee > trade.total_fee - trade.refunded_fee:
            raise BusinessError("ERROR", "累计退款金额大于支付金额")
        new = Refund.objects.create(
            trade=trade,
            out_refund_no=params["out_refund_no"],
            refund_id=services.new_refund_id(),
            refund_fee=refund_fee,
            notify_url=params.get("notify_url", ""),
            settle_at=timezone.now() + services.refund_settle_delay(),
        )
        trade.refunded_fee += refund_fee
        trade.state = Trade.REFUND
        trade.save(update_fields=["refunded_fee", "state"])
    return _refund_answer(trade, new)


def _refund_answer(trade: Trade, refund: Refund) -> dict:
    return {
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_fee": str(refund.refund_fee),
        "total_fee": str(trade.total_fee),
        "cash_fee": str(trade.total_fee),
        "refund_channel": "",
    }


@endpoint("refundquery", ("appid", "mch_id", "nonce_str"))
def refundquery(params: dict, mch: Merchant, fault: Fault) -> dict:
    refunds = Refund.objects.select_related("trade").filter(trade__mch_id=mch.mch_id)
    if params.get("refund_id"):
        refunds = refunds.filter(refund_id=params["refund_id"])
    elif params.get("out_refund_no"):
        refunds = refunds.filter(out_refund_no=params["out_refund_no"])
    elif params.get("transaction_id"):
        refunds = refunds.filter(trade__transaction_id=params["transaction_id"])
    elif params.get("out_trade_no"):
        refunds = refunds.filter(trade__out_trade_no=params["out_trade_no"])
    else:
        raise ReturnFail("缺少参数out_refund_no")
    found = list(refunds.order_by("created_at"))
    if not found:
        raise BusinessError("REFUNDNOTEXIST", "退款订单查询失败")
    now = timezone.now()
    due = [item.pk for item in found if item.is_due(now)]
    if due:
        # Settle what is due before answering, so that the answer and the refund notify
        # tell the same outcome; settle_refund is a no-op if the worker got there first.
        for pk in due:
            services.settle_refund(pk)
        found = list(refunds.order_by("created_at"))
    trade = found[0].trade
    answer = {
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "total_fee": str(trade.total_fee),
        "cash_fee": str(trade.total_fee),
        "refund_count": str(len(found)),
    }
    for n, item in enumerate(found):
        answer.update(
            {
                f"out_refund_no_{n}": item.out_refund_no,
                f"refund_id_{n}": item.refund_id,
                f"refund_fee_{n}": str(item.refund_fee),
                f"refund_status_{n}": item.state,
                f"refund_success_time_{n}": services.beijing(item.success_time, "%Y-%m-%d %H:%M:%S") if item.success_time else "",
            }
        )
    return answer


@csrf_exempt
def downloadbill(request):
    """The day's bill as WeChat's back-quoted CSV (devtools/wechat_sandbox/bills.py), or XML with
    return_code=FAIL: "No Bill Exist" for a day without trades, "Bill Creating" while the
    bill_not_ready switch is on."""
    try:
        params = _parse(_read_body(request))
        mch = merchant(params.get("mch_id"))
        if mch is None:
            raise ReturnFail("mch_id参数格式错误")
        for field in ("appid", "mch_id", "nonce_str", "bill_date", "bill_type"):
            if not params.get(field):
                raise ReturnFail(f"缺少参数{field}")
        if not wxpay.verify(params, mch.api_key, params.get("sign_type") or wxpay.MD5):
            raise ReturnFail("签名错误")
        try:
            day = datetime.strptime(params["bill_date"], "%Y%m%d").replace(tzinfo=services.BEIJING)
        except ValueError as exc:
            raise ReturnFail("invalid bill_date") from exc
        if params["bill_type"] not in ("ALL", "SUCCESS", "REFUND"):
            raise ReturnFail("invalid bill_type")
        text = _bill(mch, day, params["bill_type"])
    except ReturnFail as exc:
        return _xml({"return_code": "FAIL", "return_msg": str(exc)})
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


def _bill(mch: Merchant, day: datetime, bill_type: str) -> str:
    """The day's bill text (devtools/wechat_sandbox/bills.py); ReturnFail as WeChat answers when there is none."""
    try:
        return bills.bill_text(mch.mch_id, _bill_appid(mch), day.date(), bill_type)
    except bills.NotReady as exc:
        raise ReturnFail("Bill Creating") from exc
    except bills.NoBill as exc:
        raise ReturnFail("No Bill Exist") from exc


def _bill_appid(mch: Merchant) -> str:
    """The app a made-up bill row names (bill_add_unknown_trade): the 公众号 if the merchant has it."""
    return settings.WECHAT_APPID if settings.WECHAT_APPID in mch.appids else sorted(mch.appids)[0]

"""What happens on WeChat's side: trades are paid, refunds settle, notifies are queued."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox import conf, v3sign
from devtools.wechat_sandbox.merchants import merchant
from devtools.wechat_sandbox.models import V2, V3, AuthCode, Delivery, Fault, Refund, Trade
from wxproto import v2 as wxpay
from wxproto.beijing import BEIJING

logger = logging.getLogger(__name__)

PREPAY_TTL = timedelta(hours=2)
CODE_TTL = timedelta(minutes=5)
# How long a pay link lives (docs/wechat-pay-v2.md#native-scan-to-pay, #h5-pay-a-phones-browser):
# a Native code_url 2 hours, an H5 h5_url (v2 mweb_url) 5 minutes.
PAY_LINK_TTL = {Trade.NATIVE: timedelta(hours=2), Trade.MWEB: timedelta(minutes=5)}
# What WeChat's client says when someone other than the order's WeChat tries to pay it: a JSAPI
# order placed with another openid; a Native code another WeChat scanned first; an h5_url
# another WeChat opened first (WeChat shows 签名验证失败 on iOS and this on Android).
OTHER_PAYER = {
    Trade.JSAPI: "下单账号与支付账号不一致，请核实后再支付",
    Trade.NATIVE: "商家订单信息有误，请重新下单支付",
    Trade.MWEB: "系统繁忙，请稍后再试",
}
# The person whose openid pays a Native or H5 trade when no one is named (services.pay called directly).
DEFAULT_PAYER = "sandbox"
# WeChat accepts a refund at once and settles it later; here after 2s times
# SANDBOX_NOTIFY_TIME_SCALE, never under 0.05s so that "PROCESSING" can be seen.
REFUND_SETTLE_SECONDS = 2.0
REFUND_SETTLE_MIN_SECONDS = 0.05


class CashierError(Exception):
    """The payment sheet fails with this text, as WeChat's client would show it."""


def beijing(dt, fmt: str = "%Y%m%d%H%M%S") -> str:
    return dt.astimezone(BEIJING).strftime(fmt)


def new_prepay_id() -> str:
    return "wx" + beijing(timezone.now()) + secrets.token_hex(11)


def new_transaction_id() -> str:
    return "4200" + beijing(timezone.now(), "%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(16))


def new_refund_id() -> str:
    return "5030" + beijing(timezone.now(), "%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(16))


def openid_for(appid: str, browser_id: str) -> str:
    """A stable test openid for one browser and one app (openids are per appid)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{appid}:{browser_id}".encode(), hashlib.sha256).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def issue_pay_link(trade: Trade, now: datetime) -> str:
    """A new code_url (Native) or h5_url (MWEB) for the trade, valid PAY_LINK_TTL: every order
    call gets a new one and the previous one stops working, as WeChat's Native FAQ says of
    ordering again with the same parameters (the sandbox treats h5_url the same way).

    The caller holds the trade's row lock."""
    trade.pay_token = secrets.token_urlsafe(12)
    # never longer than the prepay_id it pays (a repeated order keeps the prepay_id of the first)
    trade.pay_token_expires_at = min(now + PAY_LINK_TTL[trade.trade_type], trade.prepay_expires_at)
    trade.save(update_fields=["pay_token", "pay_token_expires_at"])
    return pay_link(trade)


def pay_link(trade: Trade) -> str:
    """The trade's current pay link, on the sandbox, shaped as WeChat's: a Native code_url
    `{SITE_URL}/sandbox/native/bizpayurl?pr=…` (WeChat's is weixin://wxpay/bizpayurl?pr=…, which
    nothing here can open) and an H5 h5_url `{SITE_URL}/sandbox/h5/checkmweb?prepay_id=…&package=…`
    (WeChat's is https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=…&package=…), to
    which the merchant appends `&redirect_url=…`."""
    if trade.trade_type == Trade.NATIVE:
        return settings.SITE_URL + reverse("sandbox:native_scan") + "?" + urlencode({"pr": trade.pay_token})
    query = urlencode({"prepay_id": trade.prepay_id, "package": trade.pay_token})
    return settings.SITE_URL + reverse("sandbox:h5_checkmweb") + "?" + query


def payable_problem(trade: Trade, now: datetime) -> str | None:
    """Why the trade cannot be paid now, in the words the payment sheet shows, or None."""
    if trade.is_paid:
        return "该订单已支付，请勿重复支付"
    if trade.state not in (Trade.NOTPAY, Trade.USERPAYING):
        return "订单已关闭" if trade.state == Trade.CLOSED else "订单状态异常，支付失败"
    if trade.time_expire and trade.time_expire <= now:
        return "订单已过期"
    return None


def mint_code(kind: str, appid: str, openid: str, scope: str = "") -> AuthCode:
    """A single-use code that expires in 5 minutes (网页授权 or wx.login)."""
    return AuthCode.objects.create(
        code=secrets.token_urlsafe(24),
        kind=kind,
        appid=appid,
        openid=openid,
        scope=scope,
        expires_at=timezone.now() + CODE_TTL,
    )


# --- notifies ---------------------------------------------------------------------------


def _reported_fee(trade: Trade, fault: Fault) -> int:
    return fault.report_total_fee if fault.report_total_fee is not None else trade.total_fee


def trade_fields(trade: Trade, fault: Fault) -> dict[str, str]:
    """What WeChat reports of a paid trade (orderquery and the payment notify)."""
    fee = str(_reported_fee(trade, fault))
    fields = {
        "openid": trade.openid,
        "is_subscribe": "N",
        "trade_type": trade.trade_type,
        "bank_type": "CMC",
        "total_fee": fee,
        "cash_fee": fee,
        "fee_type": "CNY",
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "attach": trade.attach,
        "time_end": beijing(trade.time_end),
    }
    return {k: v for k, v in fields.items() if v}


def corrupted(sign: str) -> str:
    """A signature one character off: what the 通知与查询签名错误 switch sends."""
    return ("0" if sign[0] != "0" else "1") + sign[1:]


def signed(fields: dict[str, str], trade: Trade, fault: Fault) -> dict[str, str]:
    key = merchant(trade.mch_id).api_key
    fields = {k: v for k, v in fields.items() if v not in ("", None)}
    fields["sign"] = wxpay.sign(fields, key, trade.sign_type)
    if fault.corrupt_signature:
        fields["sign"] = corrupted(fields["sign"])
    return fields


def payment_notify_body(trade: Trade, fault: Fault) -> str:
    fields = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": trade.appid,
        "mch_id": trade.mch_id,
        "nonce_str": wxpay.nonce(),
        "result_code": "SUCCESS",
        "sign_type": trade.sign_type if trade.sign_type != wxpay.MD5 else "",
        **trade_fields(trade, fault),
    }
    return wxpay.to_xml(signed(fields, trade, fault))


def refund_notify_body(refund: Refund) -> str:
    trade = refund.trade
    key = merchant(trade.mch_id).api_key
    info = {
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "total_fee": str(trade.total_fee),
        "refund_fee": str(refund.refund_fee),
        "settlement_refund_fee": str(refund.refund_fee),
        "refund_status": refund.state,
        "success_time": beijing(refund.success_time, "%Y-%m-%d %H:%M:%S") if refund.success_time else "",
        "refund_recv_accout": "支付用户的零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }
    info = {k: v for k, v in info.items() if v}  # no success_time unless it succeeded
    fields = {
        "return_code": "SUCCESS",
        "appid": trade.appid,
        "mch_id": trade.mch_id,
        "nonce_str": wxpay.nonce(),
        "req_info": wxpay.encrypt_req_info(wxpay.to_xml(info, root="root"), key),
    }
    return wxpay.to_xml(fields)


def queue_notify(
    trade: Trade, kind: str, body: str, fault: Fault, url: str, refund: Refund | None = None, api_version: str = V2
) -> Delivery | None:
    """Queue a notify for the delivery worker (sent after the transaction commits).

    A v3 notify's headers are signed at each attempt (devtools/wechat_sandbox/delivery.py), so that its
    Wechatpay-Timestamp is fresh however late a retry goes out; its body never changes.
    """
    if not url:
        return None
    delivery = Delivery.objects.create(
        kind=kind,
        trade=trade,
        refund=refund,
        url=url,
        body=body,
        duplicate=fault.duplicate_notifies,
        next_attempt_at=timezone.now() + timedelta(seconds=fault.notify_delay_seconds),
        api_version=api_version,
    )
    from devtools.wechat_sandbox import worker

    transaction.on_commit(worker.wake)
    return delivery


# --- API v3: what WeChat says of trades and refunds, notifies and their signatures ----------

TRADE_STATE_DESC = {
    Trade.SUCCESS: "支付成功",
    Trade.REFUND: "转入退款",
    Trade.NOTPAY: "订单未支付",
    Trade.CLOSED: "已关闭",
    Trade.REVOKED: "已撤销",
    Trade.USERPAYING: "用户支付中",
    Trade.PAYERROR: "支付失败(其他原因，如银行返回失败)",
}
# event_type and summary of a refund notify, by the refund's outcome
REFUND_EVENTS = {
    Refund.SUCCESS: ("REFUND.SUCCESS", "退款成功"),
    Refund.REFUNDCLOSE: ("REFUND.CLOSED", "退款关闭"),
    Refund.CHANGE: ("REFUND.ABNORMAL", "退款异常"),
}
STALE_SECONDS = 6 * 60


def rfc3339(dt) -> str:
    """2018-06-08T10:34:56+08:00: v3's times, in Beijing time."""
    return dt.astimezone(BEIJING).isoformat(timespec="seconds")


def to_json(data: dict) -> str:
    """JSON as WeChat sends it: compact, UTF-8 (not \\u escapes)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def v3_transaction(trade: Trade, fault: Fault) -> dict:
    """What v3 reports of a trade: the query answer, and the payment notify's plaintext.

    An unpaid trade has no transaction_id, trade_type, bank_type, success_time nor payer
    openid, and its amount no payer_total, as WeChat's answers for NOTPAY orders show.
    The report_total_fee switch changes amount.total and payer_total of a paid trade.
    """
    answer: dict = {"appid": trade.appid, "mchid": trade.mch_id, "out_trade_no": trade.out_trade_no}
    if trade.is_paid:
        fee = _reported_fee(trade, fault)
        answer.update(
            {
                "transaction_id": trade.transaction_id,
                "trade_type": trade.trade_type,
                "trade_state": trade.state,
                "trade_state_desc": TRADE_STATE_DESC[trade.state],
                "bank_type": "CMC",
                "attach": trade.attach,
                "success_time": rfc3339(trade.time_end),
                "payer": {"openid": trade.openid},
                "amount": {"total": fee, "payer_total": fee, "currency": "CNY", "payer_currency": "CNY"},
            }
        )
    else:
        answer.update(
            {
                "trade_state": trade.state,
                "trade_state_desc": TRADE_STATE_DESC[trade.state],
                "attach": trade.attach,
                "payer": {},
                "amount": {"total": trade.total_fee, "currency": "CNY", "payer_currency": "CNY"},
            }
        )
    if not answer["attach"]:
        del answer["attach"]
    return answer


def v3_refund(refund: Refund) -> dict:
    """What v3 answers of a refund (申请退款 and 查询单笔退款)."""
    trade = refund.trade
    answer = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(refund.created_at),
        "status": refund.v3_status,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": trade.total_fee,
            "refund": refund.refund_fee,
            "payer_total": trade.total_fee,
            "payer_refund": refund.refund_fee,
            "settlement_total": trade.total_fee,
            "settlement_refund": refund.refund_fee,
            "discount_refund": 0,
            "currency": "CNY",
            "refund_fee": 0,
            "from": [],
        },
    }
    if refund.success_time:
        answer["success_time"] = rfc3339(refund.success_time)
    return answer


def _v3_notify(event_type: str, summary: str, original_type: str, plaintext: dict, fault: Fault) -> str:
    resource = v3sign.encrypt(conf.v3_keys().apiv3_key, to_json(plaintext).encode(), original_type)
    if fault.v3_notify_signature == Fault.V3_BAD_TAG:
        resource["ciphertext"] = v3sign.flip_tag(resource["ciphertext"])
    now = timezone.now()
    return to_json(
        {
            "id": "EV-" + beijing(now) + "".join(secrets.choice("0123456789") for _ in range(7)),
            "create_time": rfc3339(now),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": summary,
            "resource": {"original_type": original_type, **resource},
        }
    )


def v3_payment_notify_body(trade: Trade, fault: Fault) -> str:
    return _v3_notify("TRANSACTION.SUCCESS", "支付成功", "transaction", v3_transaction(trade, fault), fault)


def v3_refund_notify_body(refund: Refund, fault: Fault) -> str:
    trade = refund.trade
    plaintext = {
        "mchid": trade.mch_id,
        "transaction_id": trade.transaction_id,
        "out_trade_no": trade.out_trade_no,
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "refund_status": refund.v3_status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": trade.total_fee,
            "refund": refund.refund_fee,
            "payer_total": trade.total_fee,
            "payer_refund": refund.refund_fee,
        },
    }
    if refund.state == Refund.SUCCESS and refund.success_time:
        plaintext["success_time"] = rfc3339(refund.success_time)
    event_type, summary = REFUND_EVENTS[refund.state]
    return _v3_notify(event_type, summary, "refund", plaintext, fault)


def answer_signer(requested_serial: str) -> v3sign.Signer:
    """The key WeChat signs an answer with: by key mode, and in migration by what the
    request's Wechatpay-Serial asks for (the public key only when it names its id)."""
    keys, mode = conf.v3_keys(), conf.v3_key_mode()
    if mode == conf.PUBLIC_KEY or (mode == conf.MIGRATION and requested_serial == keys.pay.serial):
        return keys.pay
    return keys.platform


def notify_signer(fault: Fault) -> v3sign.Signer:
    """The key a notify is signed with: the public key unless the merchant has only
    certificates; the v3_notify_signature switch may ask for either."""
    keys = conf.v3_keys()
    if fault.v3_notify_signature == Fault.V3_CERTIFICATE:
        return keys.platform
    if fault.v3_notify_signature == Fault.V3_PUBLIC_KEY:
        return keys.pay
    return keys.platform if conf.v3_key_mode() == conf.CERTIFICATE else keys.pay


def v3_notify_headers(body: str, fault: Fault, *, first_sent: bool) -> dict[str, str]:
    """The headers of one attempt of a v3 notify, signed now over the stored body.

    `first_sent`: no earlier attempt reached the merchant, so a signature probe (the
    "probe" switch) goes out now; later attempts are signed correctly, as WeChat resends.
    """
    switch = fault.v3_notify_signature
    timestamp = int(time.time()) - STALE_SECONDS if switch == Fault.V3_STALE else None
    signed_headers = notify_signer(fault).headers(
        body.encode("utf-8"), timestamp=timestamp, probe=switch == Fault.V3_PROBE and first_sent, corrupt=fault.corrupt_signature
    )
    return {"Content-Type": "application/json", **signed_headers}


# --- state changes ------------------------------------------------------------------------


def pay(prepay_id: str, appid: str, payer: str | None = None) -> str:
    """The user pays: in the JSAPI cashier, or on the sandbox's Native and H5 pages. Returns the
    trade state reached; raises CashierError.

    `payer` is the openid of the WeChat that pays, when the caller knows it (None: the order's own
    WeChat). A JSAPI order names its payer when it is placed; a Native or H5 order is bound to
    the first WeChat that tries to pay it. Anyone else is refused with OTHER_PAYER's words.
    """
    with transaction.atomic():
        trade = Trade.objects.select_for_update().filter(prepay_id=prepay_id).first()
        now = timezone.now()
        if trade is None or trade.prepay_expires_at <= now:
            raise CashierError("prepay_id 已失效，请重新下单")
        if trade.appid != appid:
            raise CashierError("appId 与下单时不一致")
        problem = payable_problem(trade, now)
        if problem:
            raise CashierError(problem)
        if payer and trade.openid and payer != trade.openid:
            raise CashierError(OTHER_PAYER.get(trade.trade_type, OTHER_PAYER[Trade.JSAPI]))
        if not trade.openid:
            trade.openid = payer or openid_for(trade.appid, DEFAULT_PAYER)
            trade.save(update_fields=["openid"])
        fault = Fault.effective(trade.out_trade_no)
        if fault.end_state in (Trade.PAYERROR, Trade.USERPAYING):
            trade.state = fault.end_state
            trade.save(update_fields=["state"])
            return trade.state
        trade.state = Trade.SUCCESS
        trade.transaction_id = new_transaction_id()
        trade.time_end = now
        trade.save(update_fields=["state", "transaction_id", "time_end"])
        body = v3_payment_notify_body(trade, fault) if trade.api_version == V3 else payment_notify_body(trade, fault)
        queue_notify(trade, Delivery.PAYMENT, body, fault, trade.notify_url, api_version=trade.api_version)
        return trade.state


def refund_settle_delay() -> timedelta:
    return timedelta(seconds=max(REFUND_SETTLE_MIN_SECONDS, REFUND_SETTLE_SECONDS * settings.SANDBOX_NOTIFY_TIME_SCALE))


def settle_refund(refund_pk: int) -> Refund | None:
    """WeChat settles a PROCESSING refund and queues its notify. Returns the refund if this
    call settled it, None if it was settled already (by the worker or a refundquery).

    The outcome comes from the fault switch `end_state`: REFUNDCLOSE gives the amount back
    to the trade (a closed refund moved no money); CHANGE keeps it spent, as WeChat does
    (the money left and the merchant finishes the refund by hand on its platform).
    """
    refund = Refund.objects.select_related("trade").get(pk=refund_pk)
    if refund.state != Refund.PROCESSING:
        return None
    fault = Fault.effective(refund.trade.out_trade_no)
    outcome = fault.end_state if fault.end_state in (Refund.REFUNDCLOSE, Refund.CHANGE) else Refund.SUCCESS
    with transaction.atomic():
        # The claim is a guarded UPDATE under the refund's row lock: only one caller (the
        # worker or a refundquery) gets a row back, whoever comes second finds it settled.
        claimed = Refund.objects.filter(pk=refund_pk, state=Refund.PROCESSING).update(
            state=outcome,
            success_time=timezone.now() if outcome == Refund.SUCCESS else None,
        )
        if not claimed:
            return None
        if outcome == Refund.REFUNDCLOSE:
            trades = Trade.objects.filter(pk=refund.trade_id)
            trades.update(refunded_fee=F("refunded_fee") - refund.refund_fee)
            # Nothing else refunded (or under way): the trade is plainly paid again.
            trades.filter(state=Trade.REFUND, refunded_fee=0).update(state=Trade.SUCCESS)
        refund = Refund.objects.select_related("trade").get(pk=refund_pk)
        body = v3_refund_notify_body(refund, fault) if refund.api_version == V3 else refund_notify_body(refund)
        queue_notify(refund.trade, Delivery.REFUND, body, fault, refund.notify_url, refund=refund, api_version=refund.api_version)
    logger.info("sandbox refund %s settled: %s", refund.out_refund_no, refund.state)
    return refund


def settle_due_refunds(limit: int = 100) -> int:
    """Settle every PROCESSING refund whose time has come; returns how many this call settled.

    One refund that fails is logged and left PROCESSING for the next round.
    """
    due = Refund.objects.filter(state=Refund.PROCESSING, settle_at__lte=timezone.now()).order_by("settle_at")
    settled = 0
    for pk in list(due.values_list("pk", flat=True)[:limit]):
        try:
            if settle_refund(pk) is not None:
                settled += 1
        except Exception:
            logger.exception("sandbox refund %s could not be settled; retrying later", pk)
    return settled

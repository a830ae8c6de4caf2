"""WeChat Pay API v2 as a provider: JSAPI orders, queries, refunds, bills and notifies,
through wechatpy (payments/wechat.py: its transport and request signing, with answers
checked by us; docs/wechat-pay-v2.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from django.http import HttpResponse

from common.money import parse_fen
from orders.models import Refund
from payments import wechat
from payments.merchant import Merchant
from payments.providers.base import (
    BEIJING,
    NO_BILL,
    ORDER_CLOSED,
    ORDER_NOT_EXIST,
    ORDER_PAID,
    REFUND_NOT_EXIST,
    Notify,
    Provider,
    RefundInfo,
    TradeInfo,
    WeChatError,
    _beijing_text,
)
from wxproto import v2 as wxpay

# API v2's refund_status words, in the books' terms (docs/wechat-pay-v2.md).
REFUND_STATES = {
    "PROCESSING": Refund.Status.PROCESSING,
    "SUCCESS": Refund.Status.SUCCESS,
    "REFUNDCLOSE": Refund.Status.CLOSED,
    "CHANGE": Refund.Status.ABNORMAL,
}
NOTIFY_SUCCESS = wxpay.to_xml({"return_code": "SUCCESS", "return_msg": "OK"})
NOTIFY_FAIL = wxpay.to_xml({"return_code": "FAIL", "return_msg": "FAIL"})


V2_KINDS = {
    "ORDERNOTEXIST": ORDER_NOT_EXIST,
    "ORDERPAID": ORDER_PAID,
    "ORDERCLOSED": ORDER_CLOSED,
    "REFUNDNOTEXIST": REFUND_NOT_EXIST,
    "NO_BILL": NO_BILL,
}


def _time_end(text: str | None) -> datetime | None:
    """A payment's time_end (yyyyMMddHHmmss, Beijing time). Its 14 digits are read where they
    stand (strptime costs a notify more than the rest of reading it), to the same result;
    anything else as strptime reads it."""
    if text and len(text) == 14 and text.isascii() and text.isdigit():
        parts = int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:])
        try:
            return datetime(*parts, tzinfo=BEIJING)
        except ValueError:
            return None
    return _beijing_text(text, "%Y%m%d%H%M%S")


def _url(answer: Mapping[str, str], name: str) -> str:
    url = answer.get(name, "")
    if not url:
        raise WeChatError(f"unifiedorder: the answer has no {name}", "BAD_ANSWER", retryable=True)
    return url


class WeChatV2(Provider):
    """WeChat Pay API v2 (JSAPI), through wechatpy (payments/wechat.py)."""

    name, api = "wechat_v2", "v2"
    NOTIFY_ROUTES = {
        "payment": ("payments/wechat/notify/", "notify"),
        "refund": ("payments/wechat/refund-notify/", "refund_notify"),
    }

    def __init__(self, merchant: Merchant, appid: str):
        super().__init__(merchant, appid)
        self.pay = wechat.Pay(merchant, appid)

    def _call(self, method, *args, **kwargs) -> dict[str, str]:
        try:
            return method(*args, **kwargs)
        except WeChatError as exc:
            exc.kind = V2_KINDS.get(exc.code, exc.code)
            raise

    def _unified(self, total: int, description: str, **fields) -> dict[str, str]:
        """统一下单 in one of its ways (payments/wechat.py `unified_order`), WeChat's codes normalised."""
        return self._call(self.pay.unified_order, total_fee=total, body=description, **fields)

    def prepay(self, *, total, description, **order):
        return self._unified(total, description, **order)["prepay_id"]

    def prepay_native(self, *, total, description, **order):
        return _url(self._unified(total, description, openid="", trade_type="NATIVE", **order), "code_url")

    def prepay_h5(self, *, total, description, site_url, site_name, **order):
        scene = {"h5_info": {"type": "Wap", "wap_url": site_url, "wap_name": site_name}}
        scene_info = json.dumps(scene, ensure_ascii=False, separators=(",", ":"))
        answer = self._unified(total, description, openid="", trade_type="MWEB", scene_info=scene_info, **order)
        return _url(answer, "mweb_url")

    def pay_params(self, prepay_id):
        return self.pay.jsapi_params(prepay_id)

    def query(self, out_trade_no):
        return self.trade(self._call(self.pay.query_order, out_trade_no))

    @staticmethod
    def trade(fields: Mapping[str, str], state: str = "") -> TradeInfo:
        """A trade from an answer's fields; `state` when they have no trade_state (a query answer
        without one is no payment)."""
        return TradeInfo(
            out_trade_no=fields.get("out_trade_no", "")[:64],
            state=fields.get("trade_state", state),
            total=parse_fen(fields.get("total_fee")),
            transaction_id=fields.get("transaction_id", "")[:64],
            paid_at=_time_end(fields.get("time_end")),
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
            state=Refund.Status.PROCESSING,
            wechat_state="PROCESSING",
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
                    state=REFUND_STATES.get(answer.get(f"refund_status_{n}", "")),
                    wechat_state=answer.get(f"refund_status_{n}", "")[:32],
                    refund_id=answer.get(f"refund_id_{n}", ""),
                    out_trade_no=answer.get("out_trade_no", ""),
                    amount=parse_fen(answer.get(f"refund_fee_{n}")),
                    settled_at=_beijing_text(answer.get(f"refund_success_time_{n}"), "%Y-%m-%d %H:%M:%S"),
                )
        error = WeChatError(f"refundquery: {out_refund_no} not in the answer", "REFUNDNOTEXIST")
        error.kind = REFUND_NOT_EXIST
        raise error

    def download_bill_to(self, day, out):
        self._call(self.pay.download_bill, day.strftime("%Y%m%d"), out)

    def parse_notify(self, kind, body, headers, received_at=None):
        """Verify a v2 notify (XML, MD5/HMAC sign; the refund's AES req_info); NotifyError if it must not be applied."""
        if kind == "payment":
            fields = wechat.parse_payment_notify(self.merchant, body)
            # A payment notify has no trade_state: it reports a payment (result_code says whether).
            trade = self.trade(fields, state="SUCCESS")
            if fields.get("return_code") != "SUCCESS" or fields.get("result_code") != "SUCCESS":
                return Notify(kind, trade=trade, ignore=f"result_code={fields.get('result_code')}")
            return Notify(kind, trade=trade)
        info = wechat.parse_refund_notify(self.merchant, body)
        return Notify(
            kind,
            refund=RefundInfo(
                out_refund_no=info.get("out_refund_no", "")[:64],
                state=REFUND_STATES.get(info.get("refund_status", "")),
                wechat_state=info.get("refund_status", "")[:32],
                refund_id=info.get("refund_id", "")[:64],
                out_trade_no=info.get("out_trade_no", "")[:64],
                amount=parse_fen(info.get("refund_fee")),
                settled_at=_beijing_text(info.get("success_time"), "%Y-%m-%d %H:%M:%S"),
            ),
        )

    @classmethod
    def answer(cls, received):
        """v2 notifies are answered in XML: SUCCESS (received), or FAIL so that WeChat resends."""
        body = NOTIFY_SUCCESS if received.acknowledged else NOTIFY_FAIL
        return HttpResponse(body, content_type="text/xml")

"""小程序发货信息管理: upload_shipping_info and get_order (docs/wechat-pay-v2.md#55-小程序发货信息管理).

What WeChat does, and the sandbox with it:
- `POST wxa/sec/order/upload_shipping_info?access_token=…` (the mini program's token) records how
  a paid mini-program trade was delivered: `order_key` (1: mchid + out_trade_no, 2:
  transaction_id), `logistics_type` (1 express, 2 同城配送, 3 virtual goods, 4 用户自提),
  `delivery_mode` (1 unified, 2 split: express only, `is_all_delivered` required), `shipping_list`
  (1 to 15 entries; unified: exactly 1; `item_desc` required, at most 120 characters; express:
  `tracking_no` and `express_company`), `upload_time` (RFC 3339) and `payer.openid` (the trade's
  payer). A trade that is unknown, unpaid or not the mini program's answers 10060001, a refunded
  one 10060004, another payer 10060031.
- Uploading again to a trade whose shipping is complete, or changing its delivery or logistics
  mode, is a 重新发货: allowed once (10060003 after), never for the same information (10060023),
  and not once the user confirmed receipt (10060002).
- An enum field left out is WeChat's business error (10060005, 268485224, 268485194); a value
  outside the enum, or a field of the wrong JSON type, fails parsing: 47001.
- `POST wxa/sec/order/get_order` answers the trade and its order_state (1 待发货, 2 已发货,
  3 确认收货, 4 交易完成, 5 已退款).

Helpers for tests: `shipping_for(transaction_id)`, `fail_next_shipping(errcode, times=1)`,
`confirm_receipt(transaction_id)`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from devtools.wechat_sandbox.messages import SendError, check_token, error_answer, ok_answer, read_json, take_fault
from devtools.wechat_sandbox.models import Fault, ShippingOrder, ShippingUpload, Trade

EXPRESS, LOCAL, VIRTUAL, PICKUP = 1, 2, 3, 4
LOGISTICS_TYPES = {EXPRESS: "实体物流配送", LOCAL: "同城配送", VIRTUAL: "虚拟商品", PICKUP: "用户自提"}
UNIFIED, SPLIT = 1, 2
DELIVERY_MODES = {UNIFIED: "统一发货", SPLIT: "分拆发货"}
MAX_PACKAGES = 15
ITEM_DESC_MAX = 120
TRACKING_MAX_BYTES = EXPRESS_COMPANY_MAX_BYTES = 128
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")

ERRMSG = {
    10060001: "支付单不存在",
    10060002: "支付单已完成发货，无法继续发货",
    10060003: "支付单已使用重新发货机会",
    10060004: "支付单处于不可发货的状态",
    10060005: "物流类型有误",
    10060006: "非快递发货时不允许分拆发货",
    10060007: "分拆发货模式下必须填写 is_all_delivered 字段",
    10060008: "商品描述 item_desc 字段不能为空",
    10060009: "商品描述 item_desc 字段太长",
    10060012: "系统错误",
    10060014: "参数错误",
    10060019: "系统错误",
    10060023: "发货信息未更新",
    10060024: "物流信息列表太长",
    10060025: "物流公司编码太长",
    10060026: "物流单号太长",
    10060031: "该笔支付单不属于 openid 所指定的用户",
    268485194: "订单单号类型非法",
    268485195: "微信支付单号形式下 transaction_id 字段不能为空",
    268485196: "商户侧单号形式下 mchid 字段不能为空",
    268485197: "商户侧单号形式下 out_trade_no 字段不能为空",
    268485216: "上传时间非法，请按照 RFC 3339 格式填写",
    268485224: "发货模式非法",
    268485226: "物流单号不能为空",
    268485227: "物流公司编码不能为空",
    268485228: "统一发货模式下，物流信息列表长度必须为 1",
}


def fail(errcode: int) -> SendError:
    return SendError(errcode, ERRMSG.get(errcode))


def _enum(value: Any, allowed: dict, names: dict | None = None, *, missing: int) -> int:
    """An enum field: absent (or 0) is WeChat's business error `missing`; a value outside the enum
    or of another JSON type does not parse (47001)."""
    if value is None or value == 0:
        raise fail(missing)
    if names and isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise SendError(47001)
    return value


def _text(item: dict, name: str) -> str:
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SendError(47001)
    return value.strip()


def parse_upload_time(value: Any) -> datetime:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise fail(268485216)
    text = re.sub(r"\.(\d{6})\d+", r".\1", value)  # Python reads at most microseconds
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(268485216) from None


def find_trade(order_key: Any) -> Trade:
    """The trade an order_key names: a paid trade of the mini program, else 10060001."""
    if not isinstance(order_key, dict):
        raise SendError(47001)
    kind = _enum(order_key.get("order_number_type"), {1: 1, 2: 2}, missing=268485194)
    if kind == 2:
        transaction_id = _text(order_key, "transaction_id")
        if not transaction_id:
            raise fail(268485195)
        trade = Trade.objects.filter(transaction_id=transaction_id).first()
    else:
        mchid, out_trade_no = _text(order_key, "mchid"), _text(order_key, "out_trade_no")
        if not mchid:
            raise fail(268485196)
        if not out_trade_no:
            raise fail(268485197)
        trade = Trade.objects.filter(mch_id=mchid, out_trade_no=out_trade_no).first()
    if trade is None or not trade.transaction_id or not trade.is_paid or trade.appid != settings.WECHAT_MINIPROGRAM_APPID:
        raise fail(10060001)
    return trade


def parse_shipping(data: dict) -> dict[str, Any]:
    """The upload's shipping, checked as WeChat checks it, normalised."""
    logistics_type = _enum(data.get("logistics_type"), LOGISTICS_TYPES, missing=10060005)
    mode_names = {"UNIFIED_DELIVERY": UNIFIED, "SPLIT_DELIVERY": SPLIT}
    delivery_mode = _enum(data.get("delivery_mode"), DELIVERY_MODES, mode_names, missing=268485224)
    is_all_delivered = data.get("is_all_delivered")
    if is_all_delivered is not None and not isinstance(is_all_delivered, bool):
        raise SendError(47001)
    if delivery_mode == SPLIT:
        if logistics_type != EXPRESS:
            raise fail(10060006)
        if is_all_delivered is None:
            raise fail(10060007)
    packages = data.get("shipping_list")
    if packages is None:
        packages = []
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        raise SendError(47001)
    if len(packages) > MAX_PACKAGES:
        raise fail(10060024)
    if delivery_mode == UNIFIED and len(packages) != 1:
        raise fail(268485228)
    if not packages:
        raise fail(10060014)
    shipping_list = [_package(p, logistics_type) for p in packages]
    return {
        "logistics_type": logistics_type,
        "delivery_mode": delivery_mode,
        "is_all_delivered": is_all_delivered if delivery_mode == SPLIT else None,
        "shipping_list": shipping_list,
    }


def _package(item: dict, logistics_type: int) -> dict[str, Any]:
    desc = _text(item, "item_desc")
    if not desc:
        raise fail(10060008)
    if len(desc) > ITEM_DESC_MAX:
        raise fail(10060009)
    tracking_no, company = _text(item, "tracking_no"), _text(item, "express_company")
    if logistics_type == EXPRESS:
        if not tracking_no:
            raise fail(268485226)
        if not company:
            raise fail(268485227)
    if len(tracking_no.encode()) > TRACKING_MAX_BYTES:
        raise fail(10060026)
    if len(company.encode()) > EXPRESS_COMPANY_MAX_BYTES:
        raise fail(10060025)
    contact = item.get("contact")
    package: dict[str, Any] = {"tracking_no": tracking_no, "express_company": company, "item_desc": desc}
    if isinstance(contact, dict):
        package["contact"] = {k: str(v) for k, v in contact.items() if k in ("consignor_contact", "receiver_contact") and v}
    return package


def _same(order: ShippingOrder, shipping: dict[str, Any]) -> bool:
    def strip(packages: list[dict]) -> list[tuple]:
        return [(p.get("tracking_no", ""), p.get("express_company", ""), p.get("item_desc", "")) for p in packages]

    return (
        order.logistics_type == shipping["logistics_type"]
        and order.delivery_mode == shipping["delivery_mode"]
        and order.is_all_delivered == shipping["is_all_delivered"]
        and strip(order.shipping_list) == strip(shipping["shipping_list"])
    )


def upload(data: dict) -> None:
    """upload_shipping_info once the token is checked."""
    trade = find_trade(data.get("order_key"))
    shipping = parse_shipping(data)
    upload_time = parse_upload_time(data.get("upload_time"))
    payer = data.get("payer")
    if payer is not None and not isinstance(payer, dict):
        raise SendError(47001)
    openid = (payer or {}).get("openid")
    if not isinstance(openid, str) or not openid:
        raise fail(10060014)
    if ShippingOrder.state_for(trade, None) == ShippingOrder.REFUNDED:
        raise fail(10060004)
    if openid != trade.openid:
        raise fail(10060031)
    with transaction.atomic():
        ShippingOrder.objects.get_or_create(trade=trade)
        order = ShippingOrder.objects.select_for_update().get(trade=trade)
        _apply(order, shipping, upload_time, data)


def _apply(order: ShippingOrder, shipping: dict[str, Any], upload_time: datetime, body: dict) -> None:
    """The upload's effect on the trade's shipping, under the row's lock."""
    uploaded_before = order.logistics_type is not None
    if order.received_at is not None:
        raise fail(10060002)
    if uploaded_before and _same(order, shipping):
        raise fail(10060023)
    changes_mode = uploaded_before and (
        order.logistics_type != shipping["logistics_type"] or order.delivery_mode != shipping["delivery_mode"]
    )
    reship = order.finish_shipping or changes_mode
    if reship and order.reshipped:
        raise fail(10060003)
    finishes = shipping["delivery_mode"] == UNIFIED or bool(shipping["is_all_delivered"])
    if finishes and (reship or not order.finish_shipping):
        order.finish_shipping_count += 1
    order.logistics_type = shipping["logistics_type"]
    order.delivery_mode = shipping["delivery_mode"]
    order.is_all_delivered = shipping["is_all_delivered"]
    order.shipping_list = shipping["shipping_list"]
    order.finish_shipping = finishes
    order.reshipped = order.reshipped or reship
    order.updated_at = timezone.now()
    order.save()
    ShippingUpload.objects.create(order=order, body=body, upload_time=upload_time, reship=reship)


@csrf_exempt
def upload_shipping_info(request):
    """POST wxa/sec/order/upload_shipping_info?access_token=… (the mini program's token)."""
    if request.method != "POST":
        return error_answer(43002, "require POST method")
    try:
        check_token(request)
        failing = take_fault("shipping_fail_times", "shipping_fail_errcode")
        if failing is not None:
            raise fail(failing)
        upload(read_json(request))
    except SendError as error:
        return error_answer(error.errcode, error.errmsg)
    return ok_answer()


def _timestamp(moment: datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def order_json(trade: Trade) -> dict[str, Any]:
    """The trade as get_order answers it."""
    order = ShippingOrder.objects.filter(trade=trade).first()
    shipping: dict[str, Any] = {}
    if order is not None and order.logistics_type is not None:
        uploads = list(order.uploads.order_by("-received_at", "-pk")[:1])
        uploaded = _timestamp(uploads[0].upload_time) if uploads else 0
        shipping = {
            "delivery_mode": order.delivery_mode,
            "logistics_type": order.logistics_type,
            "finish_shipping": order.finish_shipping,
            "finish_shipping_count": order.finish_shipping_count,
            "goods_desc": "",
            "shipping_list": [
                {
                    "tracking_no": p.get("tracking_no", ""),
                    "express_company": p.get("express_company", ""),
                    "goods_desc": p.get("item_desc", ""),
                    "upload_time": uploaded,
                    **({"contact": p["contact"]} if p.get("contact") else {}),
                }
                for p in order.shipping_list
            ],
        }
    description = trade.body if len(trade.body) <= ITEM_DESC_MAX else trade.body[: ITEM_DESC_MAX - 3] + "..."
    return {
        "transaction_id": trade.transaction_id,
        "merchant_id": trade.mch_id,
        "sub_merchant_id": "",
        "merchant_trade_no": trade.out_trade_no,
        "description": description,
        "paid_amount": trade.total_fee,
        "openid": trade.openid,
        "trade_create_time": _timestamp(trade.created_at),
        "pay_time": _timestamp(trade.time_end),
        "order_state": ShippingOrder.state_for(trade, order),
        "in_complaint": False,
        "shipping": shipping,
    }


@csrf_exempt
def get_order(request):
    """POST wxa/sec/order/get_order?access_token=… {transaction_id} or {merchant_id, merchant_trade_no}."""
    if request.method != "POST":
        return error_answer(43002, "require POST method")
    try:
        check_token(request)
        data = read_json(request)
        transaction_id, merchant_id, trade_no = (
            str(data.get(k) or "") for k in ("transaction_id", "merchant_id", "merchant_trade_no")
        )
        if transaction_id:
            trade = Trade.objects.filter(transaction_id=transaction_id).first()
        elif merchant_id and trade_no:
            trade = Trade.objects.filter(mch_id=merchant_id, out_trade_no=trade_no).first()
        else:
            raise SendError(10060014, "请求参数非法")
        if trade is None or not trade.is_paid or trade.appid != settings.WECHAT_MINIPROGRAM_APPID:
            raise fail(10060001)
    except SendError as error:
        return error_answer(error.errcode, error.errmsg)
    return ok_answer(order=order_json(trade))


# --- Helpers for tests, and the phone's 确认收货 ------------------------------------------------


def shipping_for(transaction_id: str) -> dict[str, Any] | None:
    """What the sandbox holds of a trade's shipping (None for a trade it does not know): the
    get_order fields (order_state …, shipping) plus `state_label`, `reshipped` and `uploads`, each
    {body, upload_time, reship, received_at}, newest first."""
    trade = Trade.objects.filter(transaction_id=transaction_id).first() if transaction_id else None
    if trade is None:
        return None
    answer = order_json(trade)
    order = ShippingOrder.objects.filter(trade=trade).first()
    answer["state_label"] = dict(ShippingOrder.STATES)[answer["order_state"]]
    answer["reshipped"] = bool(order and order.reshipped)
    answer["uploads"] = [
        {"body": u.body, "upload_time": u.upload_time.isoformat(), "reship": u.reship, "received_at": u.received_at.isoformat()}
        for u in (order.uploads.order_by("-received_at", "-pk") if order else [])
    ]
    return answer


def fail_next_shipping(errcode: int = -1, times: int = 1) -> None:
    """The next `times` upload_shipping_info calls answer `errcode` (-1, 10060012, 10060019 …)."""
    Fault.objects.update_or_create(out_trade_no="", defaults={"shipping_fail_errcode": errcode, "shipping_fail_times": times})


def confirm_receipt(transaction_id: str) -> bool:
    """The user taps 确认收货 on a shipped trade: order_state 3, and no more uploads (10060002)."""
    return bool(
        ShippingOrder.objects.filter(trade__transaction_id=transaction_id, finish_shipping=True, received_at__isnull=True).update(
            received_at=timezone.now()
        )
    )


@require_POST
def confirm_receipt_view(request, transaction_id: str):
    confirm_receipt(transaction_id)
    back = request.POST.get("back", "")
    return HttpResponseRedirect(back if back.startswith(reverse("sandbox:messages")) else reverse("sandbox:messages"))

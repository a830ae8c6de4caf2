"""JSON answers shared by the payment endpoints and the mini-program API (docs/product.md#5-json-endpoints)."""

from __future__ import annotations

import ipaddress
import logging
import re

from django.conf import settings
from django.http import JsonResponse

MESSAGES = {
    "invalid_amount": "请输入正确的充值金额",
    "invalid_request": "请求格式不正确",
    "login_required": "请先登录",
    "openid_required": "请先绑定微信",
    "order_not_found": "订单不存在",
    "wechat_unavailable": "微信支付暂时不可用，请稍后再试",
    "wechat_error": "微信支付下单失败，请稍后再试",
    "too_many_requests": "操作太频繁，请稍后再试",
    "too_many_orders": "未完成的订单太多，请先完成支付或稍后再试",
    "server_busy": "系统繁忙，请稍后再试",
    "server_error": "系统出错了，请稍后再试",
    "csrf_failed": "页面已过期，请刷新后重试",
    "forbidden": "没有权限进行此操作",
    "not_found": "请求的地址不存在",
    "method_not_allowed": "不支持这种请求方式",
    "order_paid": "这笔订单已支付，无需再付",
    "order_confirming": "这笔订单微信支付已收款，正在确认到账，请勿重复支付",
    "order_closed": "这笔订单已关闭，请重新充值",
    "order_expired": "这笔订单已超过支付时间，请重新充值",
    "order_wrong_channel": "这笔订单是在小程序中下单的，请回到小程序支付",
}


def json_error(code: str, status: int, message: str | None = None, **extra) -> JsonResponse:
    body = {"error": code, "message": message or MESSAGES[code], **extra}
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def json_ok(body: dict, status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


logger = logging.getLogger(__name__)


def in_wechat(request) -> bool:
    """Inside WeChat's browser (its User-Agent says MicroMessenger)."""
    return "MicroMessenger" in request.headers.get("User-Agent", "")


PHONE = re.compile(r"Mobile|Android|iPhone|iPod|HarmonyOS|OpenHarmony")


def on_phone(request) -> bool:
    """A phone's browser (its User-Agent says so), where H5 pay and a QR code on the same
    screen call for different pages than a desktop's."""
    return bool(PHONE.search(request.headers.get("User-Agent", "")))


def client_ip(request) -> str | None:
    """The client's address (AXES_CLIENT_IP_CALLABLE): REMOTE_ADDR, or behind
    TRUSTED_PROXY_COUNT proxies the address the outermost one saw.

    Each proxy appends the address it was reached from to X-Forwarded-For, so the one our
    outermost proxy wrote is that many places from the right; whatever stands further left
    came from the client and may be anything.
    """
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < count:
        # Not through all the proxies (or they are not set up to append): nothing to trust.
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        logger.warning("X-Forwarded-For names no address where the proxies should have put one")
        return remote

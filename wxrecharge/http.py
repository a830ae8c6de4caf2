"""JSON answers shared by the payment endpoints and the mini-program API (SPEC.md section 5)."""

from __future__ import annotations

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
}


def json_error(code: str, status: int, message: str | None = None, **extra) -> JsonResponse:
    body = {"error": code, "message": message or MESSAGES[code], **extra}
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})


def json_ok(body: dict, status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})

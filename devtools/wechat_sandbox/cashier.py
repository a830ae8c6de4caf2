"""The payment sheet's server side: what WeChat's client does when the user taps 支付.

Who pays is the browser's sandbox WeChat: the person the sandbox's 网页授权 remembered in its
cookie (oauth.BROWSER_COOKIE), whose openid for the order's app is services.openid_for(appid,
person). WeChat lets only the WeChat the order was placed for pay a JSAPI order; anyone else
gets 下单账号与支付账号不一致，请核实后再支付. A browser that never went through the sandbox's
网页授权 (a test calling the sheet's URLs directly) is taken to be the order's own WeChat.
"""

from __future__ import annotations

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from devtools.wechat_sandbox import conf, services, v3sign
from devtools.wechat_sandbox.merchants import merchant
from devtools.wechat_sandbox.models import Trade
from devtools.wechat_sandbox.oauth import BROWSER_COOKIE
from wxproto import v2 as wxpay

PAY_FIELDS = ("appId", "timeStamp", "nonceStr", "package", "signType")
RSA = "RSA"


def pay_sign_ok(fields: dict[str, str], pay_sign: str, api_key: str) -> bool:
    """paySign as WeChat's client checks it: v3's RSA (SHA256withRSA with the merchant's key
    over appId, timeStamp, nonceStr and package, one a line), or v2's MD5 / HMAC-SHA256 with
    the API key over the five fields."""
    if fields["signType"] == RSA:
        message = "".join(fields[name] + "\n" for name in ("appId", "timeStamp", "nonceStr", "package")).encode()
        return v3sign.verify(conf.v3_keys().merchant_public_key, message, pay_sign)
    return fields["signType"] in wxpay.SIGN_TYPES and wxpay.verify({**fields, "sign": pay_sign}, api_key, fields["signType"])


def browser_payer(request, appid: str) -> str | None:
    """This browser's sandbox WeChat, as an openid of `appid`; None if the sandbox never met it."""
    person = request.COOKIES.get(BROWSER_COOKIE)
    return services.openid_for(appid, person) if person else None


def _prepay_id(package: str) -> str:
    return package[len("prepay_id=") :] if isinstance(package, str) and package.startswith("prepay_id=") else ""


@require_GET
def prepay(request):
    """What the sheet shows: merchant, goods and amount of a prepay_id."""
    trade = Trade.objects.filter(prepay_id=_prepay_id(request.GET.get("package", ""))).first()
    if trade is None:
        return JsonResponse({"error": "prepay_id 不存在"}, status=404)
    mch = merchant(trade.mch_id)
    answer = {
        "merchant": mch.name if mch else trade.mch_id,
        "body": trade.body,
        "total_fee": trade.total_fee,
        "state": trade.state,
    }
    payer = browser_payer(request, trade.appid)
    if payer:
        answer["payer"] = payer
    return JsonResponse(answer)


def _answer(result: str, desc: str = "") -> JsonResponse:
    body = {"err_msg": f"get_brand_wcpay_request:{result}"}
    if desc:
        body["err_desc"] = desc
    return JsonResponse(body)


@csrf_exempt
@require_POST
def pay(request):
    """Verify paySign as WeChat's client does (pay_sign_ok), then pay the trade."""
    try:
        data = json.loads(request.body)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) and data.get(f) for f in PAY_FIELDS + ("paySign",)):
        return _answer("fail", "调用支付JSAPI缺少参数")
    fields = {f: data[f] for f in PAY_FIELDS}
    trade = Trade.objects.filter(prepay_id=_prepay_id(fields["package"])).first()
    mch = merchant(trade.mch_id) if trade else None
    if trade is None or mch is None:
        return _answer("fail", "prepay_id 已失效，请重新下单")
    if not pay_sign_ok(fields, data["paySign"], mch.api_key):
        return _answer("fail", "支付验证签名失败")
    if trade.trade_type != Trade.JSAPI:
        # a Native or H5 prepay_id in the JSAPI sheet (WeChat Pay's FAQ on JSAPI and mini programs)
        return _answer("fail", "当前商户该支付方式存在异常，暂时无法支付")
    if data.get("outcome") == "fail":
        return _answer("fail", "支付失败（沙箱模拟：银行卡被拒）")
    try:
        state = services.pay(trade.prepay_id, fields["appId"], browser_payer(request, trade.appid))
    except services.CashierError as exc:
        return _answer("fail", str(exc))
    if state == Trade.PAYERROR:
        return _answer("fail", "支付失败（沙箱故障开关：PAYERROR）")
    # SUCCESS, or USERPAYING (the client says ok; only the merchant's query can tell)
    return _answer("ok")

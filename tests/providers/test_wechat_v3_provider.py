"""The v3 gateway against a faked WeChat (responses) whose answers are signed by a key pair
this test makes: what the flows receive from a v3 answer, and what they refuse."""

from __future__ import annotations

import json

import pytest
import responses

from orders.models import LedgerEntry, RechargeOrder
from payments import services
from tests.factories import make_order, make_user
from tests.payments.test_notify_v3 import sign, v3_site, wechat_key  # noqa: F401 (fixtures)

BASE = "https://wechat-v3.test/"


@pytest.fixture
def order(db, v3_site):  # noqa: F811
    v3_site.WECHAT_PAY_BASE_URL = BASE
    return make_order(make_user("payer", openid="oPayer"), amount=1990)


def signed_answer(wechat_key, fields: dict, status: int = 200):  # noqa: F811
    body = json.dumps(fields, ensure_ascii=False).encode()
    headers = {name[5:].replace("_", "-").title(): value for name, value in sign(body, wechat_key).items()}
    return {"body": body, "status": status, "headers": headers, "content_type": "application/json"}


def query_answer(order, **amount):
    from django.conf import settings

    return {
        "appid": settings.WECHAT_APPID,
        "mchid": settings.WECHAT_MCH_ID,
        "out_trade_no": order.out_trade_no,
        "transaction_id": "4200000000202611240000000077",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "success_time": "2026-11-24T10:00:00+08:00",
        "payer": {"openid": "oPayer"},
        "amount": {"currency": "CNY", **amount},
    }


@responses.activate
@pytest.mark.parametrize(
    ("total", "credited"), [(1990, True), ("1990", False), (1990.0, False), (True, False), (None, False), (-1990, False)]
)
def test_a_query_answer_credits_only_an_integer_amount(order, wechat_key, total, credited):  # noqa: F811
    amount = {} if total is None else {"total": total}
    responses.get(
        BASE + f"v3/pay/transactions/out-trade-no/{order.out_trade_no}",
        **signed_answer(wechat_key, query_answer(order, **amount)),
    )
    synced = services.sync_order(order)
    assert len(responses.calls) == 1
    assert (synced.status == RechargeOrder.Status.PAID) is credited
    assert LedgerEntry.objects.count() == (1 if credited else 0)


@responses.activate
def test_a_query_answer_signed_by_another_key_is_not_believed(order, wechat_key):  # noqa: F811
    from cryptography.hazmat.primitives.asymmetric import rsa

    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    responses.get(
        BASE + f"v3/pay/transactions/out-trade-no/{order.out_trade_no}", **signed_answer(forger, query_answer(order, total=1990))
    )
    with pytest.raises(services.WeChatError) as error:
        services.sync_order(order)
    assert error.value.code == "ANSWER_SIGNATURE" and error.value.retryable
    order.refresh_from_db()
    assert order.status == RechargeOrder.Status.PENDING


@responses.activate
def test_an_unknown_order_is_closed_here_only_once_it_has_expired(order, wechat_key):  # noqa: F811
    responses.get(
        BASE + f"v3/pay/transactions/out-trade-no/{order.out_trade_no}",
        **signed_answer(wechat_key, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, status=404),
    )
    assert services.sync_order(order).status == RechargeOrder.Status.PENDING
    RechargeOrder.objects.filter(pk=order.pk).update(expires_at=order.created_at)
    order.refresh_from_db()
    assert services.sync_order(order).status == RechargeOrder.Status.CLOSED


# -- trade bills ------------------------------------------------------------------------------

BILL = "交易时间,商户订单号\r\n`2026-11-23 10:00:00,`O1\r\n总交易单数\r\n`1\r\n".encode()


def serve_bill(wechat_key, data: bytes, hash_value: str):  # noqa: F811
    download = BASE + "v3/billdownload/file?token=abc"
    responses.get(
        BASE + "v3/bill/tradebill",
        **signed_answer(wechat_key, {"hash_type": "SHA1", "hash_value": hash_value, "download_url": download}),
    )
    responses.get(download, body=data, content_type="application/octet-stream")  # the file itself is not signed


@responses.activate
@pytest.mark.parametrize("fault", [None, "two gzip members", "another SHA1", "not gzip", "cut short"])
def test_a_v3_bill_is_unzipped_and_refused_unless_its_sha1_matches(order, wechat_key, fault):  # noqa: F811
    import gzip
    import hashlib
    from datetime import date

    from payments.providers import provider
    from payments.providers.base import WeChatError

    data = gzip.compress(BILL)
    digest = hashlib.sha1(BILL).hexdigest()  # WeChat's choice
    if fault == "another SHA1":
        digest = hashlib.sha1(BILL + b"x").hexdigest()
    elif fault == "not gzip":
        data = BILL
    elif fault == "cut short":
        data = data[: len(data) // 2]
    elif fault == "two gzip members":  # gzip allows it; the bill is both, in order
        data = gzip.compress(BILL[:100]) + gzip.compress(BILL[100:])
    serve_bill(wechat_key, data, digest)
    if fault in (None, "two gzip members"):
        assert provider().download_bill(date(2026, 11, 23)) == BILL
        sent = responses.calls[0].request
        assert "bill_date=2026-11-23" in sent.url and sent.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048")
        assert responses.calls[1].request.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048")
        return
    with pytest.raises(WeChatError) as error:
        provider().download_bill(date(2026, 11, 23))
    assert error.value.code == "BAD_BILL" and error.value.retryable


@responses.activate
@pytest.mark.parametrize("code", ["NO_STATEMENT_EXIST", "STATEMENT_CREATING"])
def test_no_v3_bill_yet_is_told_apart_from_a_failure(order, wechat_key, code):  # noqa: F811
    from datetime import date

    from payments.providers import provider
    from payments.providers.base import NO_BILL, WeChatError

    responses.get(BASE + "v3/bill/tradebill", **signed_answer(wechat_key, {"code": code, "message": "账单"}, status=400))
    with pytest.raises(WeChatError) as error:
        provider().download_bill(date(2026, 11, 23))
    assert error.value.kind == NO_BILL and error.value.code == code


@responses.activate
def test_a_refused_refund_keeps_wechats_code_and_request_id_for_the_operator(order, wechat_key):  # noqa: F811
    from orders.models import Refund

    order.pay("4200000000202611240000000088", order.amount, order.created_at)
    answer = signed_answer(wechat_key, {"code": "INVALID_REQUEST", "message": "申请退款金额超过订单可退金额"}, status=400)
    answer["headers"]["Request-Id"] = "08B6A2C5F90610E8D1181840E0A9"
    responses.post(BASE + "v3/refund/domestic/refunds", **answer)
    order.refresh_from_db()
    refund = services.request_refund(order, 500, "用户申请")
    assert refund.status == Refund.Status.FAILED
    assert "INVALID_REQUEST" in refund.last_error and "08B6A2C5F90610E8D1181840E0A9" in refund.last_error

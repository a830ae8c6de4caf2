"""小程序发货信息管理 over real HTTP: upload_shipping_info and get_order (devtools/wechat_sandbox/shipping.py)."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox import services, shipping, tokens
from devtools.wechat_sandbox.models import Fault, ShippingUpload, Trade

pytestmark = pytest.mark.django_db(transaction=True)

PAYER = services.openid_for(settings.WECHAT_MINIPROGRAM_APPID, "alice")
UPLOAD_TIME = "2026-12-07T13:29:35.120+08:00"
_numbers = count(1)


def paid_trade(appid: str | None = None, openid: str = PAYER, state: str = Trade.SUCCESS, **fields) -> Trade:
    """A trade the sandbox holds as paid (JSAPI in the mini program unless told otherwise)."""
    n = next(_numbers)
    return Trade.objects.create(
        mch_id=settings.WECHAT_MCH_ID,
        appid=appid or settings.WECHAT_MINIPROGRAM_APPID,
        out_trade_no=f"S{n:06d}",
        params_digest="d",
        body="余额充值 ¥100.00",
        total_fee=10000,
        trade_type=Trade.JSAPI,
        openid=openid,
        notify_url="http://127.0.0.1:9/n",
        prepay_id=f"wxS{n:06d}",
        prepay_expires_at=timezone.now() + timedelta(hours=2),
        state=state,
        transaction_id=f"42000000002026120700000{n:05d}" if state != Trade.NOTPAY else None,
        time_end=timezone.now() if state != Trade.NOTPAY else None,
        **fields,
    )


def virtual(trade: Trade, **body) -> dict:
    """A virtual-goods upload (a stored-value recharge has nothing to deliver)."""
    return {
        "order_key": {"order_number_type": 2, "transaction_id": trade.transaction_id},
        "logistics_type": 3,
        "delivery_mode": 1,
        "shipping_list": [{"item_desc": "余额充值 ¥100.00"}],
        "upload_time": UPLOAD_TIME,
        "payer": {"openid": trade.openid},
        **body,
    }


def express(trade: Trade, packages: int = 1, **body) -> dict:
    listed = [{"tracking_no": f"SF10000000{i}", "express_company": "SF", "item_desc": f"会员卡*{i + 1}"} for i in range(packages)]
    return virtual(trade, logistics_type=1, shipping_list=listed, **body)


def call(sandbox_url, path: str, body, access_token: str | None = None) -> dict:
    if access_token is None:
        access_token = tokens.stable_token(settings.WECHAT_MINIPROGRAM_APPID).access_token
    kwargs = {"json": body} if not isinstance(body, str) else {"data": body}
    return requests.post(sandbox_url + path, params={"access_token": access_token}, timeout=10, **kwargs).json()


def upload(sandbox_url, body, access_token: str | None = None) -> int:
    answer = call(sandbox_url, "wxa/sec/order/upload_shipping_info", body, access_token)
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok" or " rid: " in answer["errmsg"], answer
    return answer["errcode"]


def get_order(sandbox_url, **body) -> dict:
    return call(sandbox_url, "wxa/sec/order/get_order", body)


def test_a_recharge_is_shipped_as_virtual_goods_and_get_order_says_so(sandbox_url):
    trade = paid_trade()
    assert get_order(sandbox_url, transaction_id=trade.transaction_id)["order"]["order_state"] == 1
    assert upload(sandbox_url, virtual(trade)) == 0
    order = get_order(sandbox_url, transaction_id=trade.transaction_id)["order"]
    assert order["order_state"] == 2 and order["paid_amount"] == 10000 and order["openid"] == PAYER
    assert order["merchant_trade_no"] == trade.out_trade_no and order["description"] == "余额充值 ¥100.00"
    assert order["shipping"]["logistics_type"] == 3 and order["shipping"]["finish_shipping"] is True
    assert order["shipping"]["finish_shipping_count"] == 1
    assert order["shipping"]["shipping_list"][0]["goods_desc"] == "余额充值 ¥100.00"
    record = shipping.shipping_for(trade.transaction_id)
    assert record["state_label"] == "已发货" and record["reshipped"] is False
    assert record["uploads"][0]["body"]["upload_time"] == UPLOAD_TIME and record["uploads"][0]["reship"] is False


def test_an_order_is_found_by_merchant_number_too(sandbox_url):
    trade = paid_trade()
    key = {"order_number_type": 1, "mchid": trade.mch_id, "out_trade_no": trade.out_trade_no}
    assert upload(sandbox_url, virtual(trade, order_key=key)) == 0
    found = get_order(sandbox_url, merchant_id=trade.mch_id, merchant_trade_no=trade.out_trade_no)
    assert found["order"]["transaction_id"] == trade.transaction_id and found["order"]["order_state"] == 2


def test_a_trade_wechat_does_not_hold_for_the_mini_program_answers_10060001(sandbox_url):
    unknown = paid_trade()
    unknown.transaction_id = "4200000000000000000000000000"
    assert upload(sandbox_url, virtual(unknown)) == 10060001
    assert (
        upload(
            sandbox_url,
            virtual(
                paid_trade(state=Trade.NOTPAY),
                order_key={"order_number_type": 1, "mchid": settings.WECHAT_MCH_ID, "out_trade_no": "S-unpaid"},
            ),
        )
        == 10060001
    )
    official = paid_trade(appid=settings.WECHAT_APPID)
    assert upload(sandbox_url, virtual(official)) == 10060001
    assert get_order(sandbox_url, transaction_id=official.transaction_id)["errcode"] == 10060001
    assert get_order(sandbox_url, transaction_id="4200000000000000000000000000")["errcode"] == 10060001
    assert get_order(sandbox_url)["errcode"] == 10060014


def test_a_refunded_trade_cannot_be_shipped_and_reads_as_refunded(sandbox_url):
    trade = paid_trade(state=Trade.REFUND, refunded_fee=10000)
    assert upload(sandbox_url, virtual(trade)) == 10060004
    assert get_order(sandbox_url, transaction_id=trade.transaction_id)["order"]["order_state"] == 5
    partly = paid_trade(state=Trade.REFUND, refunded_fee=3000)
    assert upload(sandbox_url, virtual(partly)) == 0


def test_another_payer_answers_10060031(sandbox_url):
    trade = paid_trade()
    other = services.openid_for(settings.WECHAT_MINIPROGRAM_APPID, "bob")
    assert upload(sandbox_url, virtual(trade, payer={"openid": other})) == 10060031
    assert upload(sandbox_url, virtual(trade, payer={})) == 10060014


def test_a_second_upload_is_the_one_reship_and_a_third_is_refused(sandbox_url):
    trade = paid_trade()
    assert upload(sandbox_url, virtual(trade)) == 0
    assert upload(sandbox_url, virtual(trade)) == 10060023  # the same information: not updated
    changed = virtual(trade, shipping_list=[{"item_desc": "余额充值 ¥100.00（含赠送 ¥5.00）"}])
    assert upload(sandbox_url, changed) == 0
    record = shipping.shipping_for(trade.transaction_id)
    assert record["reshipped"] is True and record["shipping"]["finish_shipping_count"] == 2
    assert [u["reship"] for u in record["uploads"]] == [True, False]
    assert upload(sandbox_url, virtual(trade, shipping_list=[{"item_desc": "第三次"}])) == 10060003


def test_changing_the_logistics_mode_is_a_reship(sandbox_url):
    trade = paid_trade()
    assert upload(sandbox_url, virtual(trade)) == 0
    assert upload(sandbox_url, express(trade)) == 0
    assert shipping.shipping_for(trade.transaction_id)["shipping"]["logistics_type"] == 1
    assert upload(sandbox_url, virtual(trade)) == 10060003


def test_after_the_user_confirms_receipt_no_more_uploads(sandbox_url):
    trade = paid_trade()
    assert not shipping.confirm_receipt(trade.transaction_id)  # nothing shipped yet
    assert upload(sandbox_url, virtual(trade)) == 0
    assert shipping.confirm_receipt(trade.transaction_id)
    assert get_order(sandbox_url, transaction_id=trade.transaction_id)["order"]["order_state"] == 3
    assert upload(sandbox_url, virtual(trade, shipping_list=[{"item_desc": "改"}])) == 10060002


def test_split_delivery_completes_with_is_all_delivered(sandbox_url):
    trade = paid_trade()
    assert upload(sandbox_url, express(trade, packages=2, delivery_mode=2, is_all_delivered=False)) == 0
    assert shipping.shipping_for(trade.transaction_id)["order_state"] == 1
    assert upload(sandbox_url, express(trade, packages=3, delivery_mode="SPLIT_DELIVERY", is_all_delivered=True)) == 0
    record = shipping.shipping_for(trade.transaction_id)
    assert record["order_state"] == 2 and record["shipping"]["finish_shipping_count"] == 1 and not record["reshipped"]
    assert len(record["shipping"]["shipping_list"]) == 3


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"logistics_type": None}, 10060005),
        ({"logistics_type": 5}, 47001),
        ({"delivery_mode": None}, 268485224),
        ({"delivery_mode": 3}, 47001),
        ({"delivery_mode": 2, "is_all_delivered": True}, 10060006),  # split, but not by express
        ({"shipping_list": [{"item_desc": ""}]}, 10060008),
        ({"shipping_list": [{"item_desc": "充" * 121}]}, 10060009),
        ({"shipping_list": [{"item_desc": 5}]}, 47001),
        ({"shipping_list": [{"item_desc": "a"}, {"item_desc": "b"}]}, 268485228),
        ({"shipping_list": []}, 268485228),
        ({"shipping_list": "x"}, 47001),
        ({"order_key": {"order_number_type": None}}, 268485194),
        ({"order_key": {"order_number_type": 2}}, 268485195),
        ({"order_key": {"order_number_type": 1, "out_trade_no": "S1"}}, 268485196),
        ({"order_key": {"order_number_type": 1, "mchid": "1900000109"}}, 268485197),
        ({"payer": None}, 10060014),
    ],
)
def test_wechats_checks_of_an_upload(sandbox_url, change, code):
    body = virtual(paid_trade())
    body.update(change)
    assert upload(sandbox_url, {k: v for k, v in body.items() if v is not None}) == code
    assert not ShippingUpload.objects.exists()


def test_an_item_desc_of_120_characters_is_taken(sandbox_url):
    assert upload(sandbox_url, virtual(paid_trade(), shipping_list=[{"item_desc": "充" * 120}])) == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"delivery_mode": 2}, 10060007),  # split without is_all_delivered
        ({"delivery_mode": 2, "is_all_delivered": True, "packages": 16}, 10060024),
        ({"drop": "tracking_no"}, 268485226),
        ({"drop": "express_company"}, 268485227),
        ({"long": "tracking_no"}, 10060026),
        ({"long": "express_company"}, 10060025),
    ],
)
def test_wechats_checks_of_an_express_upload(sandbox_url, change, code):
    fields = {k: v for k, v in change.items() if k not in ("packages", "drop", "long")}
    body = express(paid_trade(), packages=change.get("packages", 1), **fields)
    for package in body["shipping_list"]:
        if "drop" in change:
            package.pop(change["drop"])
        if "long" in change:
            package[change["long"]] = "X" * 129
    assert upload(sandbox_url, body) == code


@pytest.mark.parametrize(
    ("upload_time", "ok"),
    [
        ("2022-12-15T13:29:35.120+08:00", True),
        ("2022-12-15T13:29:35+08:00", True),
        ("2024-05-07T16:48:34Z", True),
        ("2022-12-15T13:29:35.123456789+08:00", True),
        ("2022-12-15 13:29:35", False),
        ("2023-05-18T18:48:35.120 08:00", False),
        ("2023-06-13T17:03:44+0800", False),
        ("1670832735", False),
        ("2022-13-15T13:29:35+08:00", False),
    ],
)
def test_upload_time_must_be_rfc_3339(sandbox_url, upload_time, ok):
    assert upload(sandbox_url, virtual(paid_trade(), upload_time=upload_time)) == (0 if ok else 268485216)


def test_the_token_and_the_body_are_checked(sandbox_url):
    trade = paid_trade()
    assert upload(sandbox_url, virtual(trade), access_token="made-up") == 40001
    assert upload(sandbox_url, virtual(trade), access_token="") == 41001
    assert upload(sandbox_url, "not json") == 47001
    assert requests.get(sandbox_url + "wxa/sec/order/upload_shipping_info", timeout=10).json()["errcode"] == 43002


def test_the_fault_switch_answers_the_next_uploads_with_an_errcode(sandbox_url):
    trade = paid_trade()
    shipping.fail_next_shipping(10060012)
    assert upload(sandbox_url, virtual(trade)) == 10060012
    assert upload(sandbox_url, virtual(trade)) == 0
    shipping.fail_next_shipping(-1, times=1)
    assert upload(sandbox_url, virtual(trade, shipping_list=[{"item_desc": "改"}])) == -1
    assert Fault.objects.get(out_trade_no="").shipping_fail_times == 0


def test_the_phone_shows_the_shipping_and_confirms_receipt(sandbox_url):
    trade = paid_trade()
    upload(sandbox_url, virtual(trade))
    client = Client()
    back = reverse("sandbox:messages") + "?user=alice"
    page = client.get(back).content.decode()
    assert trade.transaction_id in page and "2 已发货" in page and 'data-testid="confirm-receipt"' in page
    response = client.post(reverse("sandbox:confirm_receipt", args=[trade.transaction_id]), {"back": back})
    assert response["Location"] == back
    assert shipping.shipping_for(trade.transaction_id)["order_state"] == 3
    assert "3 确认收货" in client.get(back).content.decode()


def test_shipping_for_a_trade_it_does_not_know_is_none(db):
    assert shipping.shipping_for("4200000000000000000000000000") is None
    assert shipping.shipping_for("") is None


def test_the_admin_shows_a_trades_shipping_and_its_uploads(sandbox_url, admin_client):
    trade = paid_trade()
    upload(sandbox_url, virtual(trade))
    assert trade.transaction_id in admin_client.get(reverse("admin:sandbox_shippingorder_changelist")).content.decode()
    order = trade.shipping
    page = admin_client.get(reverse("admin:sandbox_shippingorder_change", args=[order.pk])).content.decode()
    assert UPLOAD_TIME in page

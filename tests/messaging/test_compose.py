"""Which messages each balance change makes, as the admin's message list shows them: the
operator's templates filled from the event, a member who turned messages off or has no openid
recorded as skipped, subscribe messages only against a grant (each used once), a shipping
record for each mini-program payment; and the members' and operators' controls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import tokens
from messaging.admin import TemplateForm
from messaging.models import Channel, Kind, Message, MessageTemplate, SubscribeGrant
from orders.models import LedgerEntry, Lot, RechargeOrder
from outbox import delivery
from outbox.models import Event
from tests.admin import operator, settled_order
from tests.factories import make_order, make_user
from wallet.models import Charge

pytestmark = pytest.mark.django_db

MP_TEMPLATE = "mpRechargeTmpl0123456789abcdefghijklmnopqrstu"


def official_template(kind=Kind.RECHARGE, **keywords) -> MessageTemplate:
    keywords = keywords or {"character_string1": "{order}", "amount2": "{amount}", "amount3": "{balance}", "time4": "{time}"}
    return MessageTemplate.objects.create(channel=Channel.OFFICIAL, kind=kind, template_id=f"tmpl_{kind}", keywords=keywords)


def mp_template(kind=Kind.RECHARGE) -> MessageTemplate:
    return MessageTemplate.objects.create(
        channel=Channel.MINIPROGRAM,
        kind=kind,
        template_id=MP_TEMPLATE,
        keywords={"amount1": "{amount}", "thing2": "{site}"},
        page="pages/order/detail?no={order}",
    )


def mp_paid_order(user, amount=1000) -> RechargeOrder:
    order = make_order(user, amount=amount, channel=RechargeOrder.Channel.MINIPROGRAM, openid=user.miniprogram_openid)
    order.pay("4200000000" + "7" * 22, amount, timezone.now())
    order.refresh_from_db()
    return order


def dispatched() -> list[Message]:
    delivery.dispatch()
    return list(Message.objects.order_by("pk"))


def test_a_recharge_makes_the_template_message_the_operator_set_up(settings):
    official_template()
    user = make_user("m1", openid="oM1")
    order = settled_order(user, 3000)
    (message,) = dispatched()
    assert (message.channel, message.kind, message.status) == (Channel.OFFICIAL, Kind.RECHARGE, Message.Status.PENDING)
    assert message.subject == order.out_trade_no and message.openid == "oM1"
    body = message.body
    assert body["touser"] == "oM1" and body["template_id"] == "tmpl_recharge"
    assert body["data"]["character_string1"] == {"value": order.out_trade_no}
    assert body["data"]["amount2"] == {"value": "¥30.00"} and body["data"]["amount3"] == {"value": "¥30.00"}
    assert "年" in body["data"]["time4"]["value"]
    assert body["url"] == f"{settings.SITE_URL}/orders/{order.out_trade_no}/"


def test_each_kind_opens_its_page_and_spends_open_the_statement(settings):
    official_template(Kind.CHARGE, thing1="{store}", amount2="{amount}", amount3="{balance}")
    user = make_user("m2", openid="oM2")
    settled_order(user, 3000)
    Charge.create(amount=1250, user_id=user.pk, store="一号店（人民广场旗舰店，地下一层美食街东侧入口处）")
    (message,) = dispatched()
    assert message.kind == Kind.CHARGE
    assert message.body["url"] == f"{settings.SITE_URL}/wallet/statement/"
    store = message.body["data"]["thing1"]["value"]
    assert len(store) == 20 and store.endswith("…")  # WeChat's thing takes 20 characters
    assert message.body["data"]["amount3"] == {"value": "¥17.50"}


def test_no_template_for_a_kind_sends_nothing_of_it():
    official_template(Kind.REFUND_SUCCEEDED)
    settled_order(make_user("m3", openid="oM3"), 1000)
    assert dispatched() == []


def test_a_member_who_turned_messages_off_is_recorded_as_skipped():
    official_template()
    user = make_user("m4", openid="oM4", wechat_messages=False)
    settled_order(user, 1000)
    (message,) = dispatched()
    assert message.status == Message.Status.SKIPPED and "关闭" in message.last_error
    assert message.body == {}


def test_a_member_without_a_official_account_openid_is_recorded_as_skipped():
    official_template()
    settled_order(make_user("m5"), 1000)
    (message,) = dispatched()
    assert message.status == Message.Status.SKIPPED and "openid" in message.last_error


def test_a_subscribe_message_is_made_only_against_a_grant_each_used_once():
    mp_template()
    user = make_user("m6", miniprogram_openid="oMini6")
    SubscribeGrant.objects.create(user=user, template_id=MP_TEMPLATE, result=SubscribeGrant.Result.ACCEPT)
    SubscribeGrant.objects.create(user=user, template_id=MP_TEMPLATE, result=SubscribeGrant.Result.REJECT)
    first = mp_paid_order(user, 1000)
    LedgerEntry.adjust(user.pk, 100, "补偿", operator=None)  # not a kind members are told of
    second = make_order(user, amount=2000, channel=RechargeOrder.Channel.MINIPROGRAM, openid="oMini6")
    second.pay("4200000000" + "8" * 22, 2000, timezone.now())
    messages = [m for m in dispatched() if m.channel == Channel.MINIPROGRAM]
    assert [(m.subject, m.status) for m in messages] == [
        (first.out_trade_no, Message.Status.PENDING),
        (second.out_trade_no, Message.Status.SKIPPED),
    ]
    assert messages[0].body["page"] == f"pages/order/detail?no={first.out_trade_no}"
    assert messages[0].body["data"] == {"amount1": {"value": "¥10.00"}, "thing2": {"value": "余额充值"}}
    assert "订阅授权" in messages[1].last_error
    assert SubscribeGrant.objects.filter(result="accept", used_at__isnull=True).count() == 0


def test_each_mini_program_payment_gets_a_virtual_delivery_shipping_record(settings):
    user = make_user("m7", miniprogram_openid="oMini7")
    order = mp_paid_order(user, 1500)
    settled_order(make_user("m7b", openid="oM7b"), 1000)  # a 公众号 payment needs none
    (record,) = dispatched()
    assert (record.channel, record.order, record.status) == (Channel.SHIPPING, order, Message.Status.PENDING)
    assert record.body["order_key"] == {"order_number_type": 2, "transaction_id": order.transaction_id}
    assert record.body["logistics_type"] == 3 and record.body["payer"] == {"openid": "oMini7"}
    assert record.body["shipping_list"][0]["item_desc"] == "储值充值 ¥15.00"


def test_shipping_records_can_be_turned_off(settings):
    settings.WECHAT_SHIPPING_UPLOAD = False
    mp_paid_order(make_user("m8", miniprogram_openid="oMini8"))
    assert dispatched() == []


def test_an_event_makes_its_messages_once_however_often_the_worker_passes():
    official_template()
    settled_order(make_user("m9", openid="oM9"), 1000)
    dispatched()
    Event.objects.update(dispatched_at=None)  # as if a worker died after making them
    assert len(dispatched()) == 1


def test_a_bonus_about_to_expire_is_announced_once_per_member(settings):
    settings.BONUS_REMINDER_DAYS = 3
    official_template(Kind.BONUS_EXPIRING, amount1="{amount}", time2="{expires_on}")
    user = make_user("m10", openid="oM10")
    for days in (2, 1, 30):
        order = make_order(user, amount=1000, bonus=500, bonus_valid_days=days)
        order.pay(f"42000000{days:024d}", 1000, timezone.now())
    assert Lot.remind_expiring() == 1
    assert Lot.remind_expiring() == 0
    event = Event.objects.get(type="bonus.expiring")
    assert event.data["amount"] == 1000 and event.data["member_id"] == user.pk  # the two due within 3 days
    assert Lot.remind_expiring(timezone.now() + timedelta(days=28)) == 1  # the third, in its turn
    message = [m for m in dispatched() if m.kind == Kind.BONUS_EXPIRING][0]
    assert message.kind == Kind.BONUS_EXPIRING and message.body["data"]["amount1"] == {"value": "¥10.00"}
    assert message.body["data"]["time2"]["value"].endswith("日")


# -- the member's and the mini program's controls --------------------------------------------------


def test_the_account_page_turns_messages_off_and_on():
    user = make_user("m11", openid="oM11")
    client = Client()
    client.force_login(user)
    page = client.get("/accounts/").content.decode()
    assert "微信消息通知" in page and "checked" in page
    response = client.post("/accounts/", {}, follow=True)
    assert "已关闭微信消息通知" in response.content.decode()
    user.refresh_from_db()
    assert user.wechat_messages is False
    client.post("/accounts/", {"wechat_messages": "on"})
    user.refresh_from_db()
    assert user.wechat_messages is True


def test_the_account_page_needs_a_sign_in():
    response = Client().get("/accounts/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def mp_client(user) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.issue(user)}"}


def test_the_mini_program_posts_what_the_member_answered_and_sees_the_grants_left():
    mp_template()
    user = make_user("m12", miniprogram_openid="oMini12")
    client = Client()
    state = client.get("/api/mp/subscriptions", **mp_client(user)).json()
    assert state["templates"] == [
        {"kind": "recharge", "name": "充值成功", "template_id": MP_TEMPLATE, "title": "", "grants_left": 0}
    ]
    answer = {"errMsg": "requestSubscribeMessage:ok", MP_TEMPLATE: "accept"}
    for _ in range(2):
        state = client.post("/api/mp/subscriptions", answer, content_type="application/json", **mp_client(user)).json()
    assert state["templates"][0]["grants_left"] == 2 and state["recorded"] == 1
    refused = client.post("/api/mp/subscriptions", {MP_TEMPLATE: "reject"}, content_type="application/json", **mp_client(user))
    assert refused.json()["templates"][0]["grants_left"] == 2
    assert SubscribeGrant.objects.filter(user=user, result="reject").count() == 1


@pytest.mark.parametrize(
    "body, error",
    [
        ({"tmplUnknown": "accept"}, "unknown_template"),
        ({MP_TEMPLATE: "maybe"}, "invalid_request"),
        ({"errMsg": "requestSubscribeMessage:ok"}, "invalid_request"),
        ([MP_TEMPLATE], "invalid_request"),
    ],
)
def test_grants_the_mini_program_cannot_have_been_given_are_refused(body, error):
    mp_template()
    user = make_user("m13", miniprogram_openid="oMini13")
    response = Client().post("/api/mp/subscriptions", body, content_type="application/json", **mp_client(user))
    assert response.status_code == 400 and response.json()["error"] == error
    assert not SubscribeGrant.objects.exists()


def test_the_mini_program_turns_messages_off():
    user = make_user("m14", miniprogram_openid="oMini14")
    client = Client()
    answer = client.post("/api/mp/settings", {"wechat_messages": False}, content_type="application/json", **mp_client(user))
    assert answer.json()["wechat_messages"] is False
    user.refresh_from_db()
    assert user.wechat_messages is False
    bad = client.post("/api/mp/settings", {"wechat_messages": "no"}, content_type="application/json", **mp_client(user))
    assert bad.status_code == 400


def test_the_operator_writes_keywords_as_lines_and_unknown_fields_are_refused():
    form = TemplateForm(
        data={
            "channel": "official",
            "kind": "recharge",
            "template_id": "abcDEF_123-x",
            "keywords": "amount2: {amount}\nthing3：{site}",
            "is_active": "on",
        }
    )
    assert form.is_valid(), form.errors
    assert form.save().keywords == {"amount2": "{amount}", "thing3": "{site}"}
    wrong = TemplateForm(
        data={"channel": "official", "kind": "charge", "template_id": "t2", "keywords": "thing1: {order}", "is_active": "on"}
    )
    assert not wrong.is_valid()
    assert "不认识的字段：order" in str(wrong.errors)


def test_an_operator_resends_a_failed_message_from_its_page():
    official_template()
    settled_order(make_user("m15", openid="oM15"), 1000)
    (message,) = dispatched()
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.FAILED, attempts=6, last_errcode=40037, last_error="invalid template_id"
    )
    _, client = operator("ops", "messaging.view_message", "messaging.resend_message")
    page = client.get(f"/admin/messaging/message/{message.pk}/change/").content.decode()
    assert "invalid template_id" in page and "重新发送" in page
    client.post(f"/admin/messaging/message/{message.pk}/resend/")
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Message.Status.PENDING, 0)
    _, viewer = operator("viewer", "messaging.view_message")
    assert viewer.post(f"/admin/messaging/message/{message.pk}/resend/").status_code == 403


@pytest.mark.parametrize("text", ["{amount:d}", "{order!r}", "{order[0]}", "{amount:>99999999999}"])
def test_a_keyword_may_only_name_fields(text):
    form = TemplateForm(
        data={"channel": "official", "kind": "recharge", "template_id": "t3", "keywords": f"amount2: {text}", "is_active": "on"}
    )
    assert not form.is_valid()
    assert "只能写作 {字段名}" in str(form.errors)


def test_a_template_that_cannot_be_filled_fails_its_message_and_stops_nothing_else(receiver):
    from outbox.models import Delivery, WebhookEndpoint

    WebhookEndpoint.add(receiver().url, ["recharge.succeeded"])
    # Saved around the form's checks (the database, an old row): filling it raises.
    MessageTemplate.objects.create(
        channel=Channel.OFFICIAL, kind=Kind.RECHARGE, template_id="t4", keywords={"amount2": "{amount:d}"}
    )
    settled_order(make_user("m16", openid="oM16"), 1000)
    (message,) = dispatched()
    assert message.status == Message.Status.FAILED and "无法按模板生成消息" in message.last_error
    assert Delivery.objects.count() == 1  # the merchant's webhook goes out all the same
    assert not Event.objects.filter(dispatched_at__isnull=True).exists()

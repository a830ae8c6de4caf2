"""Messages and shipping records sent through the sandbox over real HTTP, as WeChat answers
them: what the member's WeChat shows, and what the admin records when WeChat is busy, refuses
the token, finds the template deleted, the data wrong, or the member unwilling."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from devtools.wechat_sandbox import messages as wechat
from devtools.wechat_sandbox import shipping as wechat_shipping
from devtools.wechat_sandbox import tokens as sandbox_tokens
from devtools.wechat_sandbox.services import openid_for
from messaging.models import Channel, Kind, Message, MessageTemplate
from orders.models import RechargeOrder
from outbox import delivery as worker
from tests.admin import operator, settled_order
from tests.factories import make_user
from wallet.models import Charge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def templates(sandbox_url):
    """The templates a development site sets up (the sandbox accounts')."""
    call_command("demo_templates", stdout=open("/dev/null", "w"))
    return {(t.channel, t.kind): t for t in MessageTemplate.objects.all()}


def member(name: str, **fields) -> User:
    return make_user(name, openid=openid_for(settings.WECHAT_APPID, name), **fields)


def one(**filters) -> Message:
    return Message.objects.get(**filters)


def test_a_recharge_reaches_the_members_wechat_with_its_amount_and_a_link_to_the_order(templates):
    user = member("s1")
    order = settled_order(user, 3000)
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert message.status == Message.Status.SENT and message.msgid and message.attempt_log.count() == 1
    (shown,) = wechat.messages_for(user.openid)
    assert shown["title"] == "充值成功通知"
    assert "充值金额：¥30.00" in shown["text"] and "当前余额：¥30.00" in shown["text"]
    assert shown["url"] == f"{settings.SITE_URL}/orders/{order.out_trade_no}/"


def test_each_kind_reaches_the_member(templates):
    user = member("s2")
    order = settled_order(user, 3000)
    charge = Charge.create(amount=1250, user_id=user.pk, store="一号店")
    charge.reverse(250, "少收")
    refund = order.start_refund(500, "退一部分")
    refund.settle(refund.Status.SUCCESS)
    failed = order.start_refund(300, "再退")
    failed.settle(failed.Status.CLOSED)
    worker.run_pass()
    sent = Message.objects.filter(channel=Channel.OFFICIAL)
    assert sorted(sent.values_list("kind", "status")) == sorted(
        (kind, "sent") for kind in (Kind.RECHARGE, Kind.CHARGE, Kind.REVERSAL, Kind.REFUND_SUCCEEDED, Kind.REFUND_FAILED)
    )
    titles = [m["title"] for m in wechat.messages_for(user.openid)]
    assert sorted(titles) == sorted(["充值成功通知", "消费成功通知", "消费撤销通知", "退款成功通知", "退款失败通知"])


def test_wechat_busy_is_retried_on_the_schedule(templates):
    user = member("s3")
    settled_order(user, 1000)
    wechat.fail_next_sends(-1)
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert (message.status, message.last_errcode, message.attempts) == (Message.Status.PENDING, -1, 1)
    assert message.next_attempt_at > timezone.now()
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        worker.run_pass()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT and message.attempts == 2
    assert len(wechat.messages_for(user.openid)) == 1


def test_a_token_wechat_no_longer_takes_is_refreshed_once_and_the_message_sent(templates):
    user = member("s4")
    settled_order(user, 1000)
    settled_order(user, 2000)
    from accounts.wechat_token import access_token

    access_token()
    sandbox_tokens.expire_all(settings.WECHAT_APPID)  # WeChat now answers 42001 for it
    worker.run_pass()
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}
    assert sandbox_tokens.count_issued(settings.WECHAT_APPID) == 2  # one refresh for both
    assert len(wechat.messages_for(user.openid)) == 2


def test_a_template_the_merchant_deleted_fails_at_once_with_its_errcode(templates):
    user = member("s5")
    wechat.delete_template(templates[(Channel.OFFICIAL, Kind.RECHARGE)].template_id)
    settled_order(user, 1000)
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert (message.status, message.last_errcode, message.attempts) == (Message.Status.FAILED, 40037, 1)
    _, client = operator("ops", "messaging.view_message", "health.view_health")
    listing = client.get("/admin/messaging/message/?attention=1").content.decode()
    assert "40037" in listing
    start = client.get("/admin/").content.decode()  # the health panel
    row = start[start.index('data-testid="health-messages"') :][:400]
    assert 'data-state="red"' in row and "微信消息发送失败" in row and "40037" in row


def test_data_the_template_refuses_fails_with_wechats_reason(templates):
    template = templates[(Channel.OFFICIAL, Kind.RECHARGE)]
    template.keywords = {**template.keywords, "amount2": "{site}"}  # not an amount
    template.save()
    settled_order(member("s6"), 1000)
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert (message.status, message.last_errcode) == (Message.Status.FAILED, 47003)
    assert "amount2" in message.last_error


@pytest.mark.parametrize(
    "refuse, errcode",
    [
        (lambda openid: wechat.block_messages(settings.WECHAT_APPID, openid), 43101),
        (lambda openid: wechat.set_follow(settings.WECHAT_APPID, openid, False), 43004),
    ],
    ids=["blocked", "unfollowed"],
)
def test_a_member_who_blocked_messages_or_unfollowed_is_recorded_and_not_retried(templates, refuse, errcode):
    user = member("s7")
    refuse(user.openid)
    settled_order(user, 1000)
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert (message.status, message.last_errcode) == (Message.Status.REFUSED, errcode)
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        worker.run_pass()
    message.refresh_from_db()
    assert message.attempts == 1


def test_a_member_who_turned_messages_off_gets_none(templates):
    user = member("s8", wechat_messages=False)
    settled_order(user, 1000)
    worker.run_pass()
    assert one(channel=Channel.OFFICIAL).status == Message.Status.SKIPPED
    assert wechat.messages_for(user.openid) == []


def test_a_network_failure_is_retried_and_never_records_the_token(templates, settings):
    settled_order(member("s9"), 1000)
    from accounts.wechat_token import access_token

    token = access_token()
    settings.WECHAT_API_BASE_URL = "http://127.0.0.1:9/"
    worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert (message.status, message.last_errcode) == (Message.Status.PENDING, -2)
    assert token not in message.last_error and token not in message.attempt_log.get().error


# -- the mini program -------------------------------------------------------------------------------


def mini_program_member(sandbox_url, name: str) -> tuple[User, dict]:
    openid = openid_for(settings.WECHAT_MINIPROGRAM_APPID, name)
    code = requests.post(sandbox_url + "mp/login-code", json={"openid": openid}, timeout=10).json()["code"]
    token = Client().post("/api/mp/login", {"code": code}, content_type="application/json").json()["token"]
    return User.objects.get(miniprogram_openid=openid), {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def mini_program_payment(sandbox_url, auth: dict, amount: str = "20.00") -> RechargeOrder:
    client = Client()
    prepaid = client.post("/api/mp/prepay", {"amount": amount}, content_type="application/json", **auth).json()
    paid = requests.post(
        sandbox_url + "cashier/pay", json={**prepaid["pay_params"], "appId": settings.WECHAT_MINIPROGRAM_APPID}, timeout=10
    ).json()
    assert paid == {"err_msg": "get_brand_wcpay_request:ok"}
    client.get(f"/api/mp/orders/{prepaid['out_trade_no']}?paid=1", **auth)  # the mini program asks: credited
    order = RechargeOrder.objects.get(out_trade_no=prepaid["out_trade_no"])
    assert order.status == RechargeOrder.Status.PAID
    return order


def test_a_subscribe_message_is_sent_against_the_members_grant_and_only_once(templates, sandbox_url):
    user, auth = mini_program_member(sandbox_url, "mp1")
    template_id = templates[(Channel.MINIPROGRAM, Kind.RECHARGE)].template_id
    answer = wechat.subscribe(user.miniprogram_openid, {template_id: "accept"})  # wx.requestSubscribeMessage
    assert answer[template_id] == "accept"
    Client().post("/api/mp/subscriptions", answer, content_type="application/json", **auth)
    first = mini_program_payment(sandbox_url, auth)
    second = mini_program_payment(sandbox_url, auth, "30.00")
    worker.run_pass()
    messages = Message.objects.filter(channel=Channel.MINIPROGRAM).order_by("pk")
    assert [(m.subject, m.status) for m in messages] == [
        (first.out_trade_no, Message.Status.SENT),
        (second.out_trade_no, Message.Status.SKIPPED),
    ]
    (shown,) = wechat.messages_for(user.miniprogram_openid)
    assert "充值金额：¥20.00" in shown["text"]
    assert wechat.grants_left(user.miniprogram_openid, template_id) == 0


def test_a_grant_wechat_no_longer_holds_is_a_refusal_not_retried(templates, sandbox_url):
    user, auth = mini_program_member(sandbox_url, "mp2")
    template_id = templates[(Channel.MINIPROGRAM, Kind.RECHARGE)].template_id
    # The mini program says accepted, but WeChat has no grant (the member turned it off since).
    Client().post("/api/mp/subscriptions", {template_id: "accept"}, content_type="application/json", **auth)
    mini_program_payment(sandbox_url, auth)
    worker.run_pass()
    message = one(channel=Channel.MINIPROGRAM)
    assert (message.status, message.last_errcode) == (Message.Status.REFUSED, 43101)


def test_each_mini_program_payment_uploads_a_virtual_delivery_shipping_record(templates, sandbox_url):
    _, auth = mini_program_member(sandbox_url, "mp3")
    order = mini_program_payment(sandbox_url, auth)
    wechat_shipping.fail_next_shipping(-1)
    worker.run_pass()
    record = one(channel=Channel.SHIPPING)
    assert (record.status, record.last_errcode) == (Message.Status.PENDING, -1)
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        worker.run_pass()
    record.refresh_from_db()
    assert record.status == Message.Status.SENT
    at_wechat = wechat_shipping.shipping_for(order.transaction_id)
    assert at_wechat["order_state"] == 2 and at_wechat["shipping"]["logistics_type"] == 3
    _, client = operator("ops", "orders.view_rechargeorder")
    page = client.get(f"/admin/orders/rechargeorder/{order.pk}/change/").content.decode()
    assert "已上传" in page


def test_a_shipping_record_whose_answer_was_lost_is_not_a_failure(templates, sandbox_url):
    _, auth = mini_program_member(sandbox_url, "mp4")
    order = mini_program_payment(sandbox_url, auth)
    worker.dispatch()
    record = one(channel=Channel.SHIPPING)
    # An earlier attempt reached WeChat, and its answer was lost on the way back.
    wechat_shipping.upload({**record.body, "upload_time": timezone.now().astimezone().isoformat(timespec="milliseconds")})
    worker.run_pass()
    record.refresh_from_db()
    assert (record.status, record.last_errcode) == (Message.Status.SENT, 10060023)
    assert wechat_shipping.shipping_for(order.transaction_id)["order_state"] == 2


def test_a_message_another_worker_took_after_this_ones_hold_ran_out_is_not_sent_again(templates):
    from messaging import sending

    user = member("s10")
    settled_order(user, 1000)
    worker.dispatch()
    (mine,) = sending.claim()
    Message.objects.filter(pk=mine.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))  # my hold ran out
    (theirs,) = sending.claim()  # another worker takes it …
    assert sending.hold_again(theirs) and sending.send(theirs)
    assert not sending.hold_again(mine)  # … and this one, coming to it at last, leaves it
    assert len(wechat.messages_for(user.openid)) == 1


def test_a_member_who_turns_messages_off_before_a_retry_is_not_sent_it(templates):
    user = member("s11")
    settled_order(user, 1000)
    wechat.fail_next_sends(-1)
    worker.run_pass()
    User.objects.filter(pk=user.pk).update(wechat_messages=False)
    with time_machine.travel(timezone.now() + timedelta(seconds=11)):
        worker.run_pass()
    message = one(channel=Channel.OFFICIAL)
    assert message.status == Message.Status.SKIPPED and "关闭" in message.last_error
    assert wechat.messages_for(user.openid) == []

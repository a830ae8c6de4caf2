"""Template and subscribe messages over real HTTP, wx.requestSubscribeMessage, and the phone that
shows them (devtools/wechat_sandbox/messages.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox import messages, services, template_seeds, tokens
from devtools.wechat_sandbox.models import AuthCode, Fault, MessageTemplate, SentMessage

pytestmark = pytest.mark.django_db(transaction=True)

RECHARGED = template_seeds.OFFICIAL_ACCOUNT[0][0]  # 公众号 充值成功通知
EXPIRING = template_seeds.OFFICIAL_ACCOUNT[5][0]  # 公众号 余额即将过期提醒
MP_RECHARGED = template_seeds.MINI_PROGRAM[0][0]  # 小程序 充值成功通知
MP_REFUNDED = template_seeds.MINI_PROGRAM[1][0]
ALICE = services.openid_for(settings.WECHAT_APPID, "alice")
ALICE_MP = services.openid_for(settings.WECHAT_MINIPROGRAM_APPID, "alice")
RECHARGE_DATA = {
    "character_string1": {"value": "R20261207000001"},
    "amount2": {"value": "¥100.00"},
    "amount3": {"value": "¥250.00"},
    "time4": {"value": "2026-12-07 10:30:00"},
}


def token(appid: str | None = None) -> str:
    return tokens.stable_token(appid or settings.WECHAT_APPID).access_token


def post(sandbox_url, path, body, access_token=None, appid=None, **kwargs):
    query = {"access_token": token(appid) if access_token is None else access_token}
    return requests.post(sandbox_url + path, params=query, json=body, timeout=10, **kwargs).json()


def send_template(sandbox_url, access_token=None, **body):
    body = {"touser": ALICE, "template_id": RECHARGED, "data": RECHARGE_DATA, **body}
    return post(sandbox_url, "cgi-bin/message/template/send", body, access_token)


def send_subscribe(sandbox_url, access_token=None, **body):
    body = {"touser": ALICE_MP, "template_id": MP_RECHARGED, "page": "pages/orders/index", "data": RECHARGE_DATA, **body}
    return post(sandbox_url, "cgi-bin/message/subscribe/send", body, access_token, appid=settings.WECHAT_MINIPROGRAM_APPID)


def request_subscribe(sandbox_url, decisions, **body):
    body = {"appid": settings.WECHAT_MINIPROGRAM_APPID, "openid": ALICE_MP, "decisions": decisions, **body}
    return requests.post(sandbox_url + "mp/subscribe", json=body, timeout=10).json()


def errcode(answer: dict) -> int:
    assert answer["errcode"] == 0 or " rid: " in answer["errmsg"], answer
    return answer["errcode"]


# --- 公众号 template messages ----------------------------------------------------------------------


def test_a_template_message_reaches_the_users_phone(sandbox_url):
    answer = send_template(sandbox_url, url="https://example.com/orders/R1/")
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok"
    assert isinstance(answer["msgid"], int) and answer["msgid"] > 10**17
    [shown] = messages.messages_for(ALICE)
    assert shown["msgid"] == answer["msgid"] and shown["kind"] == "template" and shown["title"] == "充值成功通知"
    assert (
        shown["text"]
        == "充值成功通知\n订单号：R20261207000001\n充值金额：¥100.00\n当前余额：¥250.00\n充值时间：2026-12-07 10:30:00"
    )
    assert shown["url"] == "https://example.com/orders/R1/"
    assert requests.get(sandbox_url + "messages/", params={"openid": ALICE, "format": "json"}, timeout=10).json()["messages"] == [
        shown
    ]


def test_the_same_client_msg_id_within_10_minutes_sends_once(sandbox_url, time_machine):
    first = send_template(sandbox_url, client_msg_id="recharge-R1")
    again = send_template(sandbox_url, client_msg_id="recharge-R1")
    assert again["msgid"] == first["msgid"] and SentMessage.objects.count() == 1
    other_user = send_template(sandbox_url, client_msg_id="recharge-R1", touser=services.openid_for(settings.WECHAT_APPID, "bob"))
    assert other_user["msgid"] != first["msgid"]
    assert send_template(sandbox_url)["msgid"] != first["msgid"]  # without one, every call sends
    time_machine.move_to(timezone.now() + timedelta(minutes=10, seconds=1), tick=True)
    later = send_template(sandbox_url, client_msg_id="recharge-R1")
    assert later["msgid"] != first["msgid"] and SentMessage.objects.filter(openid=ALICE).count() == 3


def test_two_sends_at_once_with_one_client_msg_id_send_once(sandbox_url):
    access_token = token()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: send_template(sandbox_url, access_token, client_msg_id="once"), range(4)))
    assert len({a["msgid"] for a in answers}) == 1 and SentMessage.objects.count() == 1


def test_the_token_is_checked(sandbox_url):
    assert errcode(send_template(sandbox_url, "made-up")) == 40001
    assert errcode(send_template(sandbox_url, "")) == 41001
    old = token()
    tokens.expire_all(settings.WECHAT_APPID)
    assert errcode(send_template(sandbox_url, old)) == 42001
    assert SentMessage.objects.count() == 0


@pytest.mark.parametrize("touser", ["", "not an openid", "o123", None])
def test_a_malformed_openid_answers_40003(sandbox_url, touser):
    assert errcode(send_template(sandbox_url, touser=touser)) == 40003


def test_an_openid_of_the_mini_program_is_not_one_of_the_official_accounts(sandbox_url):
    AuthCode.objects.create(
        code="c1", kind=AuthCode.JSCODE, appid=settings.WECHAT_MINIPROGRAM_APPID, openid=ALICE_MP, expires_at=timezone.now()
    )
    assert errcode(send_template(sandbox_url, touser=ALICE_MP)) == 40003


def test_an_unknown_or_deleted_template_answers_40037_and_a_restored_one_works(sandbox_url):
    assert errcode(send_template(sandbox_url, template_id="NoSuchTemplate0000000000000000000000000000")) == 40037
    assert errcode(send_template(sandbox_url, template_id=MP_RECHARGED)) == 40037  # a subscribe template
    assert messages.delete_template(RECHARGED) == 1
    assert errcode(send_template(sandbox_url)) == 40037
    assert messages.restore_template(RECHARGED) == 1
    assert errcode(send_template(sandbox_url)) == 0


def test_a_user_who_does_not_follow_gets_43004(sandbox_url):
    messages.set_follow(settings.WECHAT_APPID, ALICE, False)
    assert errcode(send_template(sandbox_url)) == 43004
    messages.set_follow(settings.WECHAT_APPID, ALICE, True)
    assert errcode(send_template(sandbox_url)) == 0


def test_a_user_who_turned_messages_off_gets_43101(sandbox_url):
    messages.block_messages(settings.WECHAT_APPID, ALICE)
    assert errcode(send_template(sandbox_url)) == 43101
    messages.block_messages(settings.WECHAT_APPID, ALICE, blocked=False)
    assert errcode(send_template(sandbox_url)) == 0


def test_a_missing_keyword_is_named_in_47003(sandbox_url):
    data = {k: v for k, v in RECHARGE_DATA.items() if k != "amount3"}
    answer = send_template(sandbox_url, data=data)
    assert answer["errcode"] == 47003 and answer["errmsg"].startswith("argument invalid! data.amount3.value is empty")
    answer = send_template(sandbox_url, data={**RECHARGE_DATA, "time4": {"value": "  "}})
    assert answer["errmsg"].startswith("argument invalid! data.time4.value is empty")
    assert errcode(send_template(sandbox_url, data=None)) == 47003


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("character_string1", "充值单R1"),  # no Chinese in a character_string
        ("character_string1", "R" * 33),
        ("amount2", "100元整"),
        ("amount2", "一百元"),
        ("amount2", "¥1234567890123"),  # 13 digits
        ("time4", "明天上午"),
        ("time4", "25:00"),
    ],
)
def test_a_value_breaking_its_keyword_types_rule_is_named_in_47003(sandbox_url, key, value):
    answer = send_template(sandbox_url, data={**RECHARGE_DATA, key: {"value": value}})
    assert answer["errcode"] == 47003 and answer["errmsg"].startswith(f"argument invalid! data.{key}.value invalid")


def test_extra_keys_are_ignored_and_values_may_be_numbers(sandbox_url):
    data = {**RECHARGE_DATA, "amount2": {"value": 100}, "remark": {"value": "多余的"}}
    assert errcode(send_template(sandbox_url, data=data)) == 0


def test_a_template_message_may_open_the_mini_program(sandbox_url):
    mini = {"appid": settings.WECHAT_MINIPROGRAM_APPID, "pagepath": "pages/orders/detail?no=R1"}
    expiring = {"amount1": {"value": "¥20.00"}, "date2": {"value": "2026年12月31日"}, "thing3": {"value": "沙箱洗衣店"}}
    assert (
        errcode(send_template(sandbox_url, template_id=EXPIRING, data=expiring, miniprogram=mini, url="https://x.example/")) == 0
    )
    [shown] = messages.messages_for(ALICE)
    assert shown["miniprogram"] == mini and shown["title"] == "余额即将过期提醒"


def test_the_fault_switch_answers_the_next_sends_with_an_errcode(sandbox_url):
    messages.fail_next_sends(-1)
    assert errcode(send_template(sandbox_url)) == -1
    assert errcode(send_template(sandbox_url)) == 0
    messages.fail_next_sends(40001, times=2)
    assert [errcode(send_template(sandbox_url)) for _ in range(3)] == [40001, 40001, 0]
    assert Fault.objects.get(out_trade_no="").message_fail_times == 0
    # A bad token is still answered first and does not use the switch up.
    messages.fail_next_sends(-1)
    assert errcode(send_template(sandbox_url, "made-up")) == 40001
    assert errcode(send_subscribe(sandbox_url)) == -1


def test_only_a_posted_json_object_is_taken(sandbox_url):
    url = sandbox_url + "cgi-bin/message/template/send"
    assert requests.get(url, params={"access_token": token()}, timeout=10).json()["errcode"] == 43002
    answer = requests.post(url, params={"access_token": token()}, data="touser=x", timeout=10).json()
    assert answer["errcode"] == 47001


# --- Mini-program subscribe messages ---------------------------------------------------------------


def test_a_subscribe_message_needs_an_accept_for_each_send(sandbox_url):
    assert errcode(send_subscribe(sandbox_url)) == 43101
    answer = request_subscribe(sandbox_url, {MP_RECHARGED: "accept", MP_REFUNDED: "reject"})
    assert answer == {"errMsg": "requestSubscribeMessage:ok", MP_RECHARGED: "accept", MP_REFUNDED: "reject"}
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 1 and messages.grants_left(ALICE_MP, MP_REFUNDED) == 0
    sent = send_subscribe(sandbox_url, miniprogram_state="trial", lang="en_US")
    assert errcode(sent) == 0 and isinstance(sent["msgid"], int)
    assert errcode(send_subscribe(sandbox_url)) == 43101  # the grant is used up
    assert errcode(send_subscribe(sandbox_url, template_id=MP_REFUNDED)) == 43101
    request_subscribe(sandbox_url, {MP_RECHARGED: "accept"})
    request_subscribe(sandbox_url, {MP_RECHARGED: "accept"})
    assert [errcode(send_subscribe(sandbox_url)) for _ in range(3)] == [0, 0, 43101]
    [latest, *_] = messages.messages_for(ALICE_MP)
    assert latest["kind"] == "subscribe" and latest["page"] == "pages/orders/index" and latest["title"] == "充值成功通知"
    assert SentMessage.objects.get(msgid=sent["msgid"]).miniprogram_state == "trial"


def test_a_user_named_by_person_subscribes_with_their_mini_program_openid(sandbox_url):
    body = {"appid": settings.WECHAT_MINIPROGRAM_APPID, "user": "alice", "decisions": {MP_RECHARGED: "accept"}}
    assert requests.post(sandbox_url + "mp/subscribe", json=body, timeout=10).json()[MP_RECHARGED] == "accept"
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 1


def test_two_sends_at_once_share_no_grant(sandbox_url):
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept"})
    access_token = token(settings.WECHAT_MINIPROGRAM_APPID)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: send_subscribe(sandbox_url, access_token)["errcode"], range(3)))
    assert sorted(answers) == [0, 43101, 43101]


@pytest.mark.parametrize(
    ("decisions", "code"),
    [
        ({}, 10001),
        ({"NoSuchTemplate0000000000000000000000000000": "accept"}, 20001),
        ({RECHARGED: "accept"}, 20001),  # the 公众号's template, not the mini program's
        ({f"T{i}": "accept" for i in range(6)}, 20003),
    ],
)
def test_request_subscribe_message_fails_as_the_client_does(sandbox_url, decisions, code):
    answer = request_subscribe(sandbox_url, decisions)
    assert answer["errCode"] == code and answer["errMsg"].startswith("requestSubscribeMessage:fail")
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 0


def test_ban_is_recorded_but_grants_nothing(sandbox_url):
    assert request_subscribe(sandbox_url, {MP_RECHARGED: "ban"})[MP_RECHARGED] == "ban"
    assert errcode(send_subscribe(sandbox_url)) == 43101


def test_with_messages_turned_off_the_panel_fails_and_sends_answer_43101(sandbox_url):
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept"})
    messages.block_messages(settings.WECHAT_MINIPROGRAM_APPID, ALICE_MP)
    assert request_subscribe(sandbox_url, {MP_RECHARGED: "accept"})["errCode"] == 20004
    assert errcode(send_subscribe(sandbox_url)) == 43101
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 1  # kept for when they turn it on


def test_subscribe_sends_check_template_data_and_openid(sandbox_url):
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept"})
    assert errcode(send_subscribe(sandbox_url, template_id=RECHARGED)) == 40037
    assert errcode(send_subscribe(sandbox_url, touser="bad")) == 40003
    too_long = {**RECHARGE_DATA, "amount2": {"value": "¥12345678901"}}  # 11 digits: subscribe amounts take 10
    assert send_subscribe(sandbox_url, data=too_long)["errmsg"].startswith("argument invalid! data.amount2.value invalid")
    messages.delete_template(MP_RECHARGED)
    assert errcode(send_subscribe(sandbox_url)) == 40037
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 1  # no send used it


def test_the_official_accounts_token_finds_no_subscribe_template(sandbox_url):
    body = {"touser": ALICE, "template_id": MP_RECHARGED, "data": RECHARGE_DATA}
    assert errcode(post(sandbox_url, "cgi-bin/message/subscribe/send", body, appid=settings.WECHAT_APPID)) == 40037
    # The mini program's openid is not one of the 公众号's.
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept"})
    body["touser"] = ALICE_MP
    assert errcode(post(sandbox_url, "cgi-bin/message/subscribe/send", body, appid=settings.WECHAT_APPID)) == 40003


# --- Keyword rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "value", "ok"),
    [
        ("thing", "沙箱洗衣店（人民路店）", True),
        ("thing", "一" * 21, False),
        ("number", "12.5", True),
        ("number", "-3", False),
        ("letter", "abc", True),
        ("letter", "ab1", False),
        ("symbol", "%-+", True),
        ("symbol", "a%", False),
        ("character_string", "R-2026_12/07#1", True),
        ("character_string", "R 1", False),
        ("time", "15:01", True),
        ("time", "2019年10月1日 15:01", True),
        ("time", "2026-12-07 10:30:00", True),
        ("time", "2026/12/07 10:30~2026/12/07 12:00", True),
        ("time", "2026-12-07", False),
        ("date", "2026年12月31日", True),
        ("date", "2026-12-31 23:59", True),
        ("date", "12-31", True),
        ("date", "2026-13-01", False),
        ("amount", "¥100.00", True),
        ("amount", "100.00元", True),
        ("amount", "￥0.01", True),
        ("amount", "100", True),
        ("amount", "1,000.00", False),
        ("phone_number", "+86-0766-66888866", True),
        ("phone_number", "400客服", False),
        ("car_number", "粤A8Z888挂", True),
        ("car_number", "粤A8Z8888挂", False),
        ("name", "张三", True),
        ("name", "张" * 11, False),
        ("name", "Zhang San", True),
        ("phrase", "已到账", True),
        ("phrase", "已经全部到账", False),
        ("phrase", "ok", False),
        ("const", "支付成功", True),
    ],
)
def test_keyword_rules(key_type, value, ok):
    assert messages.value_ok(MessageTemplate.SUBSCRIBE, key_type, value) is ok


def test_template_amounts_take_twelve_digits_and_subscribe_amounts_ten():
    assert messages.value_ok(MessageTemplate.TEMPLATE, "amount", "¥123456789012")
    assert not messages.value_ok(MessageTemplate.SUBSCRIBE, "amount", "¥12345678901")


# --- The phone and the templates page ---------------------------------------------------------------


def test_the_phone_shows_messages_as_wechat_does_newest_first(sandbox_url):
    send_template(sandbox_url, url="https://example.com/orders/R1/")
    send_template(sandbox_url, data={**RECHARGE_DATA, "amount2": {"value": "¥30.00"}})
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept", MP_REFUNDED: "accept"})
    send_subscribe(sandbox_url)
    page = Client().get(reverse("sandbox:messages"), {"user": "alice"}).content.decode()
    assert page.index("充值金额：</dt><dd>¥30.00") < page.index("充值金额：</dt><dd>¥100.00")
    assert 'href="https://example.com/orders/R1/">详情' in page
    assert "服务通知" in page and "进入小程序查看" in page and "pages/orders/index" in page
    assert ALICE in page and ALICE_MP in page
    # The grants left: 充值成功通知 used its one, 退款成功通知 has one.
    assert page.count('data-testid="grants-left">0<') == len(template_seeds.MINI_PROGRAM) - 1
    assert page.count('data-testid="grants-left">1<') == 1


def test_the_phone_defaults_to_the_browsers_sandbox_wechat(sandbox_url):
    send_template(sandbox_url)
    client = Client()
    assert 'data-testid="no-identity"' in client.get(reverse("sandbox:messages")).content.decode()
    client.cookies["sandbox_wx_user"] = "alice"
    page = client.get(reverse("sandbox:messages")).content.decode()
    assert "本机的沙箱微信" in page and "充值成功通知" in page


def test_the_phones_buttons_follow_block_and_grant(db):
    client = Client()
    back = reverse("sandbox:messages") + "?user=alice"
    act = reverse("sandbox:messages_act")
    base = {"openid": ALICE, "appid": settings.WECHAT_APPID, "back": back}
    assert client.post(act, {**base, "action": "unfollow"})["Location"] == back
    assert not messages.user_state(settings.WECHAT_APPID, ALICE).follows
    client.post(act, {**base, "action": "block"})
    assert messages.user_state(settings.WECHAT_APPID, ALICE).messages_blocked
    mini = {"openid": ALICE_MP, "appid": settings.WECHAT_MINIPROGRAM_APPID, "back": back, "template_id": MP_RECHARGED}
    client.post(act, {**mini, "action": "accept"})
    client.post(act, {**mini, "action": "accept"})
    client.post(act, {**mini, "action": "reject"})
    assert messages.grants_left(ALICE_MP, MP_RECHARGED) == 2
    page = client.get(back).content.decode()
    assert 'data-testid="follow" data-on="0"' in page and 'data-testid="official-receive" data-on="0"' in page
    # Redirects stay on the phone page.
    assert client.post(act, {**base, "action": "follow", "back": "https://evil.example/"})["Location"] == reverse(
        "sandbox:messages"
    )


def test_the_json_view_needs_someone(db):
    assert Client().get(reverse("sandbox:messages"), {"format": "json"}).status_code == 400


def test_the_templates_page_lists_ids_and_keywords_and_deletes(sandbox_url):
    client = Client()
    page = client.get(reverse("sandbox:templates")).content.decode()
    for template_id, title, keywords in template_seeds.OFFICIAL_ACCOUNT + template_seeds.MINI_PROGRAM:
        assert template_id in page and title in page
        assert all(f"{name} <code>{key}</code>" in page for key, name in keywords)
    row = MessageTemplate.objects.get(template_id=RECHARGED)
    client.post(reverse("sandbox:template_delete", args=[row.pk]))
    assert errcode(send_template(sandbox_url)) == 40037
    assert 'data-deleted="1"' in client.get(reverse("sandbox:templates")).content.decode()
    client.post(reverse("sandbox:template_restore", args=[row.pk]))
    assert errcode(send_template(sandbox_url)) == 0


def test_the_dashboard_sets_the_message_switches_and_links_the_pages(db):
    client = Client()
    index = reverse("sandbox:index")
    page = client.get(index).content.decode()
    for name in ("sandbox:messages", "sandbox:templates", "sandbox:robot"):
        assert f'href="{reverse(name)}"' in page
    required = {"drop_notifies": "0", "notify_delay_seconds": "0"}
    form = {**required, "out_trade_no": "", "message_fail_errcode": "40001", "message_fail_times": "2", "robot_down": "True"}
    assert client.post(index, form).status_code == 302
    fault = Fault.objects.get(out_trade_no="")
    assert (fault.message_fail_errcode, fault.message_fail_times, fault.robot_down) == (40001, 2, True)
    page = client.get(index).content.decode()
    assert "接下来 2 次消息发送答 40001" in page and "告警机器人宕机" in page
    # Only in the global row.
    assert client.post(index, {**required, "out_trade_no": "T1", "message_fail_times": "1"}).status_code == 200
    assert not Fault.objects.filter(out_trade_no="T1").exists()


def test_the_templates_come_back_in_an_emptied_database(db):
    MessageTemplate.objects.all().delete()
    assert len(messages.templates_for(settings.WECHAT_APPID)) == len(template_seeds.OFFICIAL_ACCOUNT)
    assert messages.seed_templates(settings.WECHAT_APPID) == 0


def test_the_admin_lists_templates_users_grants_and_messages(sandbox_url, admin_client):
    send_template(sandbox_url)
    messages.subscribe(ALICE_MP, {MP_RECHARGED: "accept"})
    messages.set_follow(settings.WECHAT_APPID, ALICE, False)
    for model in ("messagetemplate", "appuser", "subscribedecision", "sentmessage"):
        page = admin_client.get(reverse(f"admin:sandbox_{model}_changelist"))
        assert page.status_code == 200, model
    sent = SentMessage.objects.get()
    assert admin_client.get(reverse("admin:sandbox_sentmessage_change", args=[sent.pk])).status_code == 200

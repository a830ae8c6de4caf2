"""The /sandbox/ page and the sandbox's admin: Chinese, amounts in yuan, WeChat's codes kept,
and the switches reset all at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from devtools.wechat_sandbox.models import Attempt, Delivery, Fault, Refund, Trade

pytestmark = pytest.mark.django_db
INDEX = reverse("sandbox:index")
RESET = reverse("sandbox:reset_faults")


def trade(out_trade_no: str, total_fee: int = 1990, state: str = Trade.SUCCESS, **fields) -> Trade:
    return Trade.objects.create(
        mch_id=settings.WECHAT_MCH_ID,
        appid=settings.WECHAT_APPID,
        out_trade_no=out_trade_no,
        params_digest="d",
        body="余额充值",
        total_fee=total_fee,
        trade_type="JSAPI",
        openid="oSandbox" + "x" * 20,
        notify_url="http://127.0.0.1:9/n",
        prepay_id="wx" + out_trade_no,
        state=state,
        prepay_expires_at=timezone.now() + timedelta(hours=2),
        **fields,
    )


def test_the_page_is_in_chinese_with_wechats_codes_beside_their_meaning(client):
    paid = trade("D1", refunded_fee=250)
    Refund.objects.create(trade=paid, out_refund_no="D1-R1", refund_id="50000001", refund_fee=250)
    trade("D2", total_fee=100000, state=Trade.NOTPAY)
    delivery = Delivery.objects.create(
        kind=Delivery.PAYMENT,
        trade=paid,
        url=paid.notify_url,
        body="<xml/>",
        state=Delivery.DELIVERED,
        attempts=1,
        next_attempt_at=timezone.now(),
    )
    Attempt.objects.create(
        delivery=delivery, status_code=200, outcome="success", answer="<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>"
    )
    page = client.get(INDEX).content.decode()
    for header in ("商户订单号", "交易状态", "金额", "通知投递"):
        assert f"<th>{header}</th>" in page
    assert "<code>SUCCESS</code> 支付成功" in page and "<code>NOTPAY</code> 未支付" in page
    assert "<code>PROCESSING</code> 退款处理中" in page
    assert "¥19.90" in page and "¥1000.00" in page and "已退 ¥2.50" in page
    assert "已送达" in page and "商户答 SUCCESS" in page
    # The merchant's raw answer is kept whole, in a block that wraps and scrolls.
    assert '<pre class="sbx-pre">&lt;xml&gt;&lt;return_code&gt;' in page


def test_the_fault_switches_are_weui_cells(client):
    page = client.get(INDEX).content.decode()
    # send twice, corrupt the signature; and the bill's: omit, duplicate, unknown trade, bad summary, not ready
    assert page.count('class="weui-switch"') == 7
    assert 'class="weui-cell weui-cell_select weui-cell_select-after"' in page
    assert "丢弃通知（次）" in page and "出错接口" in page


def test_a_trade_opens_its_own_switches_in_the_form(client):
    Fault.objects.create(out_trade_no="D3", drop_notifies=4)
    page = client.get(INDEX, {"out_trade_no": "D3"}).content.decode()
    assert 'name="out_trade_no" value="D3"' in page and 'name="drop_notifies" value="4"' in page


def test_the_switches_in_force_are_described_in_words(client):
    Fault.objects.create(out_trade_no="", drop_notifies=2, corrupt_signature=True)
    Fault.objects.create(out_trade_no="D4", report_total_fee=1, end_state="PAYERROR", systemerror_endpoints="orderquery")
    page = client.get(INDEX).content.decode()
    assert "全局" in page and "丢弃接下来 2 次通知" in page and "签名错误" in page
    assert "报告 total_fee=1（¥0.01）" in page and "结果：支付失败 PAYERROR" in page and "SYSTEMERROR：orderquery" in page


def test_reset_all_faults_deletes_every_switch(client):
    Fault.objects.create(out_trade_no="", drop_notifies=1)
    Fault.objects.create(out_trade_no="D5", duplicate_notifies=True)
    Fault.objects.create(out_trade_no="D6", end_state="USERPAYING")
    response = client.post(RESET, follow=True)
    assert response.redirect_chain == [(INDEX, 302)]
    assert not Fault.objects.exists()
    assert "已重置全部故障开关（删除 3 条）" in response.content.decode()
    assert Fault.effective("D5").duplicate_notifies is False


def test_reset_all_faults_is_a_post_with_a_csrf_token_and_asks_first(client):
    Fault.objects.create(out_trade_no="", drop_notifies=1)
    assert client.get(RESET).status_code == 405
    assert Client(enforce_csrf_checks=True).post(RESET).status_code == 403
    assert Fault.objects.count() == 1
    page = client.get(INDEX).content.decode()
    form = page[page.index(f'action="{RESET}"') :]
    form = form[: form.index("</form>")]
    assert "csrfmiddlewaretoken" in form and 'data-confirm="删除全部 1 条故障开关' in form
    assert "重置全部故障开关" in form and "sandbox/dashboard.js" in page


def test_reset_with_nothing_to_reset_says_so(client):
    response = client.post(RESET, follow=True)
    assert "没有生效中的故障开关" in response.content.decode()
    assert "disabled>重置全部故障开关" in client.get(INDEX).content.decode()


def test_the_sandbox_admin_shows_amounts_in_yuan_and_codes_with_labels(admin_client):
    paid = trade("D7", total_fee=1990, refunded_fee=500, state=Trade.REFUND)
    refund = Refund.objects.create(trade=paid, out_refund_no="D7-R1", refund_id="50000007", refund_fee=500, state=Refund.SUCCESS)
    trades = admin_client.get(reverse("admin:sandbox_trade_changelist")).content.decode()
    assert "¥19.90" in trades and "¥5.00" in trades and "<code>REFUND</code> 转入退款" in trades
    assert ">1990<" not in trades
    detail = admin_client.get(reverse("admin:sandbox_trade_change", args=[paid.pk])).content.decode()
    assert "¥19.90（1990 分）" in detail and "<code>SUCCESS</code> 退款成功" in detail
    refunds = admin_client.get(reverse("admin:sandbox_refund_changelist")).content.decode()
    assert "¥5.00" in refunds and "<code>SUCCESS</code> 退款成功" in refunds
    assert admin_client.get(reverse("admin:sandbox_refund_change", args=[refund.pk])).status_code == 200
    found = admin_client.get(reverse("admin:sandbox_trade_changelist"), {"q": "D7"})
    assert list(found.context["cl"].result_list) == [paid]

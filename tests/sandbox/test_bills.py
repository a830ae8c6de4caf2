"""The sandbox's trade bills over real HTTP, under both API versions: v2 `pay/downloadbill`
(wechatpy) and v3 `tradebill` then its download (wechatpayv3, SHA1 checked), and through
our own payment interface (payments.providers). The rows come from the sandbox's trades and
refunds in WeChat's format; the summary adds up; each bill switch; no bill, not ready.

The bill is a contract with the merchant's parser, so the bills made here are also read
by wxproto.bill.parse: those that should verify do, the broken ones are refused.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from wechatpy.exceptions import WeChatPayException

from common.money import MILLIFEN_PER_FEN, format_fee, format_fen
from devtools.wechat_sandbox import bills, services
from devtools.wechat_sandbox.models import Fault, Refund, Trade
from payments.providers import provider
from payments.providers.base import NO_BILL, WeChatError
from tests.helpers import clear_of_midnight
from tests.sandbox.test_v3_merchant_api import prepay, v3_client
from wxproto import bill as merchant_bill

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
COLUMNS = HEADER.split(",")
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
OPENID = "oSandboxUser000000000000001"


@pytest.fixture(autouse=True)
def _clear_of_midnight():
    """Trades are made "today" (Beijing) and the bill of today is read: a test started in
    the last minutes of a day runs in the first minutes of the next instead."""
    with clear_of_midnight():
        yield


def today():
    return timezone.localtime(timezone.now(), services.BEIJING).date()


class WeChat:
    """The sandbox driven as a merchant would, with one API version's own client."""

    def __init__(self, api: str, sandbox_url: str, wxpay):
        self.api, self.sandbox_url, self.wxpay = api, sandbox_url, wxpay
        self.v3 = v3_client(sandbox_url)

    def paid(self, out_trade_no: str, total: int = 1000, body: str = "余额充值", attach: str = "") -> Trade:
        """A trade placed and paid now."""
        if self.api == "v2":
            extra = {"attach": attach} if attach else {}
            created = self.wxpay.order.create(
                trade_type="JSAPI",
                body=body,
                total_fee=total,
                client_ip="127.0.0.1",
                notify_url="http://127.0.0.1:9/notify",
                user_id=OPENID,
                out_trade_no=out_trade_no,
                **extra,
            )
            prepay_id = created["prepay_id"]
        else:
            code, created = self._prepay(out_trade_no, total, body, {"attach": attach} if attach else {})
            assert code == 200, created
            prepay_id = created["prepay_id"]
        assert services.pay(prepay_id, settings.WECHAT_APPID) == Trade.SUCCESS
        return Trade.objects.get(out_trade_no=out_trade_no)

    def _prepay(self, out_trade_no: str, total: int, body: str, extra: dict) -> tuple[int, dict]:
        code, text = self.v3.pay(
            description=body, out_trade_no=out_trade_no, amount={"total": total}, payer={"openid": OPENID}, **extra
        )
        return code, json.loads(text)

    def refund(self, trade: Trade, amount: int, out_refund_no: str, settle: bool = True) -> Refund:
        """A refund accepted by the sandbox, and (with `settle`) settled now, as WeChat does a little later."""
        if self.api == "v2":
            self.wxpay.refund.apply(
                total_fee=trade.total_fee, refund_fee=amount, out_refund_no=out_refund_no, out_trade_no=trade.out_trade_no
            )
        else:
            code, text = self.v3.refund(
                out_refund_no=out_refund_no,
                out_trade_no=trade.out_trade_no,
                amount={"refund": amount, "total": trade.total_fee, "currency": "CNY"},
            )
            assert code == 200, text
        refund = Refund.objects.get(out_refund_no=out_refund_no)
        if settle:
            Refund.objects.filter(pk=refund.pk).update(settle_at=timezone.now())
            services.settle_refund(refund.pk)
        return Refund.objects.get(pk=refund.pk)

    def bill(self, day=None, bill_type: str = "ALL") -> str:
        """The bill's text, asked for as this API version's client asks; WeChatError-like failures raise."""
        day = day or today()
        if self.api == "v2":
            text = self.wxpay.tools.download_bill(day.strftime("%Y%m%d"), bill_type=bill_type)
            assert isinstance(text, str), text
            return text
        code, answer = self.v3.trade_bill(bill_date=day.isoformat(), bill_type=bill_type)
        if code != 200:
            raise V3Answer(code, json.loads(answer))
        listed = json.loads(answer)
        code, data = self.v3.download_bill(listed["download_url"])
        assert code == 200
        text = gzip.decompress(data)
        assert listed["hash_type"] == "SHA1" and hashlib.sha1(text).hexdigest() == listed["hash_value"]
        return text.decode("utf-8")

    def no_bill(self, day=None, bill_type: str = "ALL") -> str:
        """What the API answers for a day without a bill: v2's return_msg, v3's error code."""
        if self.api == "v2":
            with pytest.raises(WeChatPayException) as exc:
                self.bill(day, bill_type)
            assert exc.value.return_code == "FAIL"
            return exc.value.return_msg
        with pytest.raises(V3Answer) as exc:
            self.bill(day, bill_type)
        assert exc.value.status == 400
        return exc.value.answer["code"]


class V3Answer(Exception):
    def __init__(self, status: int, answer: dict):
        super().__init__(status, answer)
        self.status, self.answer = status, answer


@pytest.fixture(params=["v2", "v3"])
def wechat(request, sandbox_url, wxpay):
    return WeChat(request.param, sandbox_url, wxpay)


# -- reading a bill, independently of the merchant's parser --------------------------------------


def read(text: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The detail rows ({column: value}) and the summary of a bill that has no stray commas."""
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text[:-2].split("\r\n")
    assert lines[0] == HEADER and lines[-2] == SUMMARY_HEADER
    rows = []
    for line in lines[1:-2]:
        values = line.split(",")
        assert len(values) == len(COLUMNS) and all(v.startswith("`") for v in values), line
        rows.append(dict(zip(COLUMNS, (v[1:] for v in values), strict=True)))
    summary = lines[-1].split(",")
    assert all(v.startswith("`") for v in summary)
    return rows, dict(zip(SUMMARY_HEADER.split(","), (v[1:] for v in summary), strict=True))


def fen(text: str, places: int = 2) -> int:
    """An amount written with exactly `places` decimals, in units of that last decimal."""
    sign = -1 if text.startswith("-") else 1
    whole, _, decimals = text.lstrip("-").partition(".")
    assert len(decimals) == places, text
    return sign * (int(whole) * 10**places + int(decimals))


def fee(text: str) -> int:
    """A fee as WeChat writes it, five decimals ("0.06000"), in millifen."""
    return fen(text, places=5)


def assert_adds_up(rows: list[dict], summary: dict) -> None:
    """The summary is what the rows add up to (订单总金额: the payment rows' 订单金额)."""

    def total(column: str, only: str | None = None) -> int:
        return sum(fen(r[column]) for r in rows if only is None or r["交易状态"] == only)

    assert summary == {
        "总交易单数": str(len(rows)),
        "应结订单总金额": format_fen(total("应结订单金额")),
        "退款总金额": format_fen(total("退款金额")),
        "充值券退款总金额": "0.00",
        "手续费总金额": format_fee(sum(fee(r["手续费"]) for r in rows)),
        "订单总金额": format_fen(total("订单金额", "SUCCESS")),
        "申请退款总金额": format_fen(total("申请退款金额")),
    }


def at(moment: datetime) -> str:
    return services.beijing(moment, "%Y-%m-%d %H:%M:%S")


# -- the rows and the summary ----------------------------------------------------------------------


def test_a_day_of_payments_and_refunds_in_wechats_format(wechat):
    a = wechat.paid("BILLA01", 1000)
    b = wechat.paid("BILLA02", 2550)
    r = wechat.refund(a, 300, "BILLA01-R1")
    text = wechat.bill()
    rows, summary = read(text)
    assert [(row["商户订单号"], row["交易状态"]) for row in rows] == [
        ("BILLA01", "SUCCESS"),
        ("BILLA02", "SUCCESS"),
        ("BILLA01", "REFUND"),
    ]
    assert rows[0] == {
        "交易时间": at(a.time_end),
        "公众账号ID": settings.WECHAT_APPID,
        "商户号": settings.WECHAT_MCH_ID,
        "特约商户号": "0",
        "设备号": "",
        "微信订单号": a.transaction_id,
        "商户订单号": "BILLA01",
        "用户标识": OPENID,
        "交易类型": "JSAPI",
        "交易状态": "SUCCESS",
        "付款银行": "CMC",
        "货币种类": "CNY",
        "应结订单金额": "10.00",
        "代金券金额": "0.00",
        "微信退款单号": "0",
        "商户退款单号": "0",
        "退款金额": "0.00",
        "充值券退款金额": "0.00",
        "退款类型": "",
        "退款状态": "",
        "商品名称": "余额充值",
        "商户数据包": "",
        "手续费": "0.06000",
        "费率": "0.60%",
        "订单金额": "10.00",
        "申请退款金额": "0.00",
        "费率备注": "",
    }
    assert (rows[1]["应结订单金额"], rows[1]["订单金额"], rows[1]["手续费"]) == ("25.50", "25.50", "0.15000")  # 15.3 fen
    assert rows[2] == {
        **rows[0],
        "交易时间": at(r.created_at),
        "交易状态": "REFUND",
        "应结订单金额": "0.00",
        "微信退款单号": r.refund_id,
        "商户退款单号": "BILLA01-R1",
        "退款金额": "3.00",
        "退款类型": "ORIGINAL",
        "退款状态": "SUCCESS",
        "手续费": "-0.02000",
        "订单金额": "10.00",
        "申请退款金额": "3.00",
    }
    assert summary == {
        "总交易单数": "3",
        "应结订单总金额": "35.50",
        "退款总金额": "3.00",
        "充值券退款总金额": "0.00",
        "手续费总金额": "0.19000",
        "订单总金额": "35.50",
        "申请退款总金额": "3.00",
    }
    assert_adds_up(rows, summary)
    # The merchant's parser reads it as the same bill.
    parsed = merchant_bill.parse(text.encode(), today())
    assert (parsed.count, parsed.paid, parsed.refunded, parsed.fee) == (3, 3550, 300, 19 * MILLIFEN_PER_FEN)
    assert [(row.kind, row.out_trade_no, row.amount, row.refund_amount) for row in parsed.rows] == [
        ("payment", "BILLA01", 1000, 0),
        ("payment", "BILLA02", 2550, 0),
        ("refund", "BILLA01", 0, 300),
    ]
    assert parsed.rows[2].refund_id == r.refund_id and parsed.rows[2].out_refund_no == "BILLA01-R1"
    assert Trade.objects.get(pk=b.pk).state == Trade.SUCCESS


def test_success_and_refund_bills_keep_their_own_rows(wechat):
    a = wechat.paid("BILLB01", 1000)
    wechat.paid("BILLB02", 1990)
    wechat.refund(a, 1000, "BILLB01-R1")
    rows, summary = read(wechat.bill(bill_type="SUCCESS"))
    assert [(r["商户订单号"], r["交易状态"]) for r in rows] == [("BILLB01", "SUCCESS"), ("BILLB02", "SUCCESS")]
    assert summary["总交易单数"] == "2" and summary["应结订单总金额"] == "29.90" and summary["退款总金额"] == "0.00"
    assert_adds_up(rows, summary)
    rows, summary = read(wechat.bill(bill_type="REFUND"))
    assert [(r["商户订单号"], r["交易状态"], r["退款金额"]) for r in rows] == [("BILLB01", "REFUND", "10.00")]
    assert summary == {
        "总交易单数": "1",
        "应结订单总金额": "0.00",
        "退款总金额": "10.00",
        "充值券退款总金额": "0.00",
        "手续费总金额": "-0.06000",
        "订单总金额": "0.00",
        "申请退款总金额": "10.00",
    }


def test_paid_trades_and_every_refund_accepted_are_in_the_bill_with_the_refunds_state_then(wechat, sandbox_url):
    """WeChat writes a refund into the bill of the day it was requested, whatever became of
    it, with its state when the bill was cut."""
    a = wechat.paid("BILLC01", 1000)
    wechat.refund(a, 100, "BILLC01-R1", settle=False)  # still PROCESSING
    Fault.objects.create(out_trade_no="BILLC02", end_state="REFUNDCLOSE")
    b = wechat.paid("BILLC02", 500)
    wechat.refund(b, 500, "BILLC02-R1")  # closed: no money moved
    assert Refund.objects.get(out_refund_no="BILLC02-R1").state == Refund.REFUNDCLOSE
    Fault.objects.create(out_trade_no="BILLC03", end_state="PAYERROR")
    code, created = prepay(v3_client(sandbox_url), "BILLC03", 700)
    assert services.pay(created["prepay_id"], settings.WECHAT_APPID) == Trade.PAYERROR
    prepay(v3_client(sandbox_url), "BILLC04", 800)  # never paid
    rows, summary = read(wechat.bill())
    assert sorted((r["商户订单号"], r["交易状态"], r["退款状态"]) for r in rows) == [
        ("BILLC01", "REFUND", "PROCESSING"),
        ("BILLC01", "SUCCESS", ""),
        ("BILLC02", "REFUND", "REFUNDCLOSE"),
        ("BILLC02", "SUCCESS", ""),
    ]
    assert_adds_up(rows, summary)
    assert summary["退款总金额"] == "6.00"  # requested that day, whatever became of them


def test_a_day_without_a_bill(wechat):
    assert wechat.no_bill() == ("No Bill Exist" if wechat.api == "v2" else "NO_STATEMENT_EXIST")
    wechat.paid("BILLD01", 1000)
    assert wechat.no_bill(today() - timedelta(days=1)) == ("No Bill Exist" if wechat.api == "v2" else "NO_STATEMENT_EXIST")
    # Payments but no refunds: the REFUND bill of the day does not exist either.
    assert wechat.no_bill(bill_type="REFUND") == ("No Bill Exist" if wechat.api == "v2" else "NO_STATEMENT_EXIST")
    with pytest.raises(WeChatError) as exc:
        provider(api=wechat.api).download_bill(today() - timedelta(days=1))
    assert exc.value.kind == NO_BILL


def test_our_payment_interface_downloads_the_same_bill_under_both_versions(wechat):
    """payments.providers: v2 as text, v3 downloaded, unzipped and its SHA1 checked."""
    a = wechat.paid("BILLE01", 1234)
    wechat.refund(a, 234, "BILLE01-R1")
    v2, v3 = provider(api="v2").download_bill(today()), provider(api="v3").download_bill(today())
    assert v2 == v3 == wechat.bill().encode("utf-8")
    rows, summary = read(v3.decode())
    assert summary["手续费总金额"] == "0.06000"  # 7.404 fen -> 7, minus 1.404 -> 1
    assert_adds_up(rows, summary)


def test_commas_and_back_quotes_from_the_merchant_are_written_as_is(wechat):
    """WeChat writes body and attach untouched: a comma in them makes a line the merchant
    must cope with (its parser splits fields at ",`", so the commas stay text)."""
    wechat.paid("BILLF01", 1000, body="充值,加急`A", attach="x,y`z")
    text = wechat.bill()
    line = text.split("\r\n")[1]
    assert ",`充值,加急`A,`x,y`z,`0.06000,`0.60%," in line
    assert len(line.split(",")) == len(COLUMNS) + 2
    parsed = merchant_bill.parse(text.encode(), today())
    assert [(row.out_trade_no, row.amount) for row in parsed.rows] == [("BILLF01", 1000)]
    assert "充值,加急`A" in parsed.rows[0].raw


def test_fee_is_rounded_half_up_to_the_fen():
    assert [bills.fee_of(fen) for fen in (1, 83, 84, 250, 750, 1000, 2550)] == [0, 0, 1, 2, 5, 6, 15]
    assert [format_fen(fen) for fen in (0, 5, -3, 1234, -100)] == ["0.00", "0.05", "-0.03", "12.34", "-1.00"]


# -- the switches -----------------------------------------------------------------------------------


def test_bill_omit_leaves_out_the_trade_and_its_refunds(wechat):
    a = wechat.paid("BILLG01", 1000)
    b = wechat.paid("BILLG02", 2000)
    wechat.refund(a, 100, "BILLG01-R1")
    wechat.refund(b, 200, "BILLG02-R1")
    Fault.objects.create(out_trade_no="BILLG01", bill_omit=True)
    rows, summary = read(wechat.bill())
    assert [(r["商户订单号"], r["交易状态"]) for r in rows] == [("BILLG02", "SUCCESS"), ("BILLG02", "REFUND")]
    assert summary["总交易单数"] == "2" and summary["应结订单总金额"] == "20.00" and summary["退款总金额"] == "2.00"
    assert_adds_up(rows, summary)
    Fault.objects.create(out_trade_no="BILLG02", bill_omit=True)
    assert wechat.no_bill() in ("No Bill Exist", "NO_STATEMENT_EXIST")


def test_bill_total_fee_reports_another_amount_and_the_summary_still_adds_up(wechat):
    a = wechat.paid("BILLH01", 1000)
    wechat.paid("BILLH02", 500)
    wechat.refund(a, 300, "BILLH01-R1")
    Fault.objects.create(out_trade_no="BILLH01", bill_total_fee=1200)
    text = wechat.bill()
    rows, summary = read(text)
    assert [(r["商户订单号"], r["交易状态"], r["应结订单金额"], r["订单金额"], r["手续费"], r["退款金额"]) for r in rows] == [
        ("BILLH01", "SUCCESS", "12.00", "12.00", "0.07000", "0.00"),
        ("BILLH02", "SUCCESS", "5.00", "5.00", "0.03000", "0.00"),
        ("BILLH01", "REFUND", "0.00", "12.00", "-0.02000", "3.00"),
    ]
    assert summary["应结订单总金额"] == "17.00" and summary["订单总金额"] == "17.00"
    assert_adds_up(rows, summary)
    assert merchant_bill.parse(text.encode(), today()).paid == 1700  # verifies: only the amount is wrong
    assert Trade.objects.get(out_trade_no="BILLH01").total_fee == 1000
    # Only the bill: a query still tells the real amount.
    assert wechat.wxpay.order.query(out_trade_no="BILLH01")["total_fee"] == "1000"


def test_bill_add_unknown_trade_adds_the_same_made_up_trade_to_each_bill_with_rows(wechat):
    Fault.objects.create(out_trade_no="", bill_add_unknown_trade=True)
    assert wechat.no_bill() in ("No Bill Exist", "NO_STATEMENT_EXIST")  # nothing to add it to
    a = wechat.paid("BILLI01", 1000)
    text = wechat.bill()
    rows, summary = read(text)
    out_trade_no, transaction_id = bills.unknown_ids(settings.WECHAT_MCH_ID, today())
    assert [r["商户订单号"] for r in rows] == [out_trade_no, "BILLI01"]
    unknown = rows[0]
    assert (unknown["微信订单号"], unknown["交易状态"], unknown["应结订单金额"], unknown["公众账号ID"], unknown["商户号"]) == (
        transaction_id,
        "SUCCESS",
        "8.88",
        settings.WECHAT_APPID,
        settings.WECHAT_MCH_ID,
    )
    assert unknown["交易时间"] == at(a.time_end)
    assert not Trade.objects.filter(out_trade_no=out_trade_no).exists()
    assert summary["总交易单数"] == "2" and summary["应结订单总金额"] == "18.88"
    assert_adds_up(rows, summary)
    assert wechat.bill() == text  # the same made-up trade at every download
    assert merchant_bill.parse(text.encode(), today()).count == 2
    wechat.refund(a, 100, "BILLI01-R1")
    rows, _ = read(wechat.bill(bill_type="REFUND"))
    assert [r["交易状态"] for r in rows] == ["REFUND"]  # a payment row has no place in a refund bill
    rows, _ = read(wechat.bill(bill_type="SUCCESS"))
    assert [r["商户订单号"] for r in rows] == [out_trade_no, "BILLI01"]


def test_bill_duplicate_row_lists_a_payment_twice_and_counts_it_twice(wechat):
    wechat.paid("BILLJ01", 1000)
    wechat.paid("BILLJ02", 2000)
    Fault.objects.create(out_trade_no="BILLJ01", bill_duplicate_row=True)
    text = wechat.bill()
    rows, summary = read(text)
    assert [r["商户订单号"] for r in rows] == ["BILLJ01", "BILLJ01", "BILLJ02"]
    assert rows[0] == rows[1]
    assert summary["总交易单数"] == "3" and summary["应结订单总金额"] == "40.00"
    assert_adds_up(rows, summary)
    parsed = merchant_bill.parse(text.encode(), today())
    assert list(parsed.duplicates) == [("payment", rows[0]["微信订单号"])]


def test_bill_corrupt_summary_makes_the_total_one_fen_off(wechat):
    wechat.paid("BILLK01", 1000)
    Fault.objects.create(out_trade_no="", bill_corrupt_summary=True)
    text = wechat.bill()
    rows, summary = read(text)
    assert summary["应结订单总金额"] == "10.01" and sum(fen(r["应结订单金额"]) for r in rows) == 1000
    with pytest.raises(merchant_bill.BillInvalid, match="汇总与明细不符：应结订单总金额 10.01，明细合计 10.00"):
        merchant_bill.parse(text.encode(), today())


def test_bill_not_ready_answers_wechats_bill_creating(wechat):
    wechat.paid("BILLL01", 1000)
    Fault.objects.create(out_trade_no="", bill_not_ready=True)
    assert wechat.no_bill() == ("Bill Creating" if wechat.api == "v2" else "STATEMENT_CREATING")
    if wechat.api == "v3":
        code, answer = wechat.v3.trade_bill(bill_date=today().isoformat())
        assert json.loads(answer) == {"code": "STATEMENT_CREATING", "message": "账单生成中"}
    with pytest.raises(WeChatError) as exc:  # what the merchant makes of it: no bill yet
        provider(api=wechat.api).download_bill(today())
    assert exc.value.kind == NO_BILL and "creating" in str(exc.value).lower() + exc.value.code.lower()
    Fault.objects.filter(out_trade_no="").update(bill_not_ready=False)
    assert read(wechat.bill())[1]["总交易单数"] == "1"


def test_trade_switches_on_the_global_row_apply_to_every_trade(wechat):
    wechat.paid("BILLM01", 1000)
    wechat.paid("BILLM02", 2000)
    Fault.objects.create(out_trade_no="", bill_total_fee=1)
    Fault.objects.create(out_trade_no="BILLM02", drop_notifies=1)  # its own row wins, without bill switches
    rows, summary = read(wechat.bill())
    assert [(r["商户订单号"], r["应结订单金额"]) for r in rows] == [("BILLM01", "0.01"), ("BILLM02", "20.00")]
    assert_adds_up(rows, summary)


# -- the switches in the sandbox's page and admin -------------------------------------------------------


def test_whole_bill_switches_belong_to_the_global_row():
    for name in Fault.GLOBAL_ONLY:
        with pytest.raises(ValidationError) as exc:
            Fault(out_trade_no="T1", **{name: True}).full_clean()
        assert name in exc.value.message_dict
        Fault(out_trade_no="", **{name: True}).full_clean()
    Fault(out_trade_no="T1", bill_omit=True, bill_total_fee=5, bill_duplicate_row=True).full_clean()


def test_the_sandbox_page_sets_and_describes_the_bill_switches(client):
    page = client.get(reverse("sandbox:index")).content.decode()
    assert 'data-testid="bill-switches"' in page
    for label in (
        "账单中略去",
        "账单金额（分）",
        "账单中重复一行",
        "多一笔未知交易（全局）",
        "汇总金额错（全局）",
        "账单生成中（全局）",
    ):
        assert label in page
    response = client.post(
        reverse("sandbox:index"),
        {
            "out_trade_no": "P1",
            "drop_notifies": "0",
            "notify_delay_seconds": "0",
            "bill_omit": "on",
            "bill_total_fee": "1200",
            "bill_duplicate_row": "on",
        },
        follow=True,
    )
    fault = Fault.objects.get(out_trade_no="P1")
    assert (fault.bill_omit, fault.bill_total_fee, fault.bill_duplicate_row) == (True, 1200, True)
    assert "账单中略去" in response.content.decode() and "账单金额=1200（¥12.00）" in response.content.decode()
    refused = client.post(
        reverse("sandbox:index"),
        {"out_trade_no": "P2", "drop_notifies": "0", "notify_delay_seconds": "0", "bill_not_ready": "on"},
    )
    assert refused.status_code == 200 and "只能在全局开关中设置" in refused.content.decode()
    assert not Fault.objects.filter(out_trade_no="P2").exists()
    client.post(
        reverse("sandbox:index"),
        {
            "out_trade_no": "",
            "drop_notifies": "0",
            "notify_delay_seconds": "0",
            "bill_add_unknown_trade": "on",
            "bill_corrupt_summary": "on",
            "bill_not_ready": "on",
        },
    )
    page = client.get(reverse("sandbox:index")).content.decode()
    assert "账单多一笔未知交易" in page and "账单汇总金额错 0.01" in page and "账单生成中" in page


def test_the_sandbox_admin_shows_the_bill_switches(admin_client):
    Fault.objects.create(out_trade_no="", bill_corrupt_summary=True)
    Fault.objects.create(out_trade_no="Q1", bill_omit=True, bill_total_fee=1200)
    listing = admin_client.get(reverse("admin:sandbox_fault_changelist")).content.decode()
    assert "对账单" in listing and "汇总金额错" in listing and "略去、金额 ¥12.00" in listing
    form = admin_client.get(reverse("admin:sandbox_fault_add")).content.decode()
    for name in (
        "bill_omit",
        "bill_total_fee",
        "bill_duplicate_row",
        "bill_add_unknown_trade",
        "bill_corrupt_summary",
        "bill_not_ready",
    ):
        assert f'name="{name}"' in form
    answer = admin_client.post(
        reverse("admin:sandbox_fault_add"),
        {"out_trade_no": "Q2", "drop_notifies": "0", "notify_delay_seconds": "0", "bill_add_unknown_trade": "on"},
    )
    assert answer.status_code == 200 and "只能在全局开关中设置" in answer.content.decode()
    assert not Fault.objects.filter(out_trade_no="Q2").exists()


# -- refunds as WeChat writes them: on the day requested, with the state at the bill's cut ----------


def test_a_refund_is_in_the_bill_of_the_day_it_was_requested_with_its_state_when_the_bill_was_cut(db):
    """WeChat's bill lists a refund when it is requested (交易时间 = the request, not the
    success) and never updates its 退款状态 afterwards: one that finished after 09:00 the
    next day, when the bill is cut, stays PROCESSING in it."""
    day = datetime(2026, 11, 23, tzinfo=services.BEIJING).date()
    paid_at = datetime(2026, 11, 23, 10, 0, tzinfo=services.BEIJING)
    trade = Trade.objects.create(
        mch_id=settings.WECHAT_MCH_ID,
        appid=settings.WECHAT_APPID,
        out_trade_no="BILLR01",
        params_digest="d",
        body="余额充值",
        total_fee=1000,
        trade_type="JSAPI",
        openid=OPENID,
        notify_url="http://127.0.0.1:9/n",
        prepay_id="wxBILLR01",
        state=Trade.REFUND,
        prepay_expires_at=paid_at,
        transaction_id="4200000000000000000000000001",
        time_end=paid_at,
        refunded_fee=600,
    )

    def refund(no: str, requested: datetime, state: str, ended: datetime | None) -> None:
        Refund.objects.create(
            trade=trade,
            out_refund_no=no,
            refund_id=f"5030{no}",
            refund_fee=100,
            state=state,
            created_at=requested,
            settle_at=ended,
            success_time=ended if state == Refund.SUCCESS else None,
        )

    late = datetime(2026, 11, 23, 23, 59, 30, tzinfo=services.BEIJING)
    refund("R-EARLY", paid_at + timedelta(hours=1), Refund.SUCCESS, paid_at + timedelta(hours=1, minutes=1))
    refund("R-NIGHT", late, Refund.SUCCESS, late + timedelta(minutes=2))  # succeeds the next day, before the cut
    refund("R-SLOW", late, Refund.SUCCESS, datetime(2026, 11, 24, 9, 30, tzinfo=services.BEIJING))  # after the cut
    refund("R-OPEN", late, Refund.PROCESSING, None)
    refund("R-CLOSED", late, Refund.REFUNDCLOSE, late + timedelta(minutes=5))
    refund(
        "R-NEXT",
        datetime(2026, 11, 24, 0, 0, 1, tzinfo=services.BEIJING),
        Refund.SUCCESS,
        datetime(2026, 11, 24, 0, 1, tzinfo=services.BEIJING),
    )
    with time_machine.travel(datetime(2026, 11, 25, 12, 0, tzinfo=services.BEIJING), tick=False):
        rows, summary = read(bills.bill_text(settings.WECHAT_MCH_ID, settings.WECHAT_APPID, day))
        next_rows, _ = read(bills.bill_text(settings.WECHAT_MCH_ID, settings.WECHAT_APPID, day + timedelta(days=1)))
    refunds = {r["商户退款单号"]: (r["交易时间"], r["退款状态"]) for r in rows if r["交易状态"] == "REFUND"}
    assert refunds == {
        "R-EARLY": ("2026-11-23 11:00:00", "SUCCESS"),
        "R-NIGHT": ("2026-11-23 23:59:30", "SUCCESS"),
        "R-SLOW": ("2026-11-23 23:59:30", "PROCESSING"),
        "R-OPEN": ("2026-11-23 23:59:30", "PROCESSING"),
        "R-CLOSED": ("2026-11-23 23:59:30", "REFUNDCLOSE"),
    }
    assert summary["退款总金额"] == "5.00" and summary["手续费总金额"] == "0.01000"  # 6 fen, minus 5 x 1 fen
    assert [(r["商户退款单号"], r["交易时间"]) for r in next_rows] == [("R-NEXT", "2026-11-24 00:00:01")]
    assert_adds_up(rows, summary)
    # The merchant's reader takes it as it is: five-decimal fees, refunds in flight at the cut.
    parsed = merchant_bill.parse(bills.bill_text(settings.WECHAT_MCH_ID, settings.WECHAT_APPID, day).encode(), day)
    assert parsed.fee == 1 * MILLIFEN_PER_FEN
    assert sorted(r.out_refund_no for r in parsed.refunds_in_flight) == ["R-OPEN", "R-SLOW"]

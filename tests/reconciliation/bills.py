"""Trade bills as WeChat publishes them (the text of pay/downloadbill, and of v3's tradebill once
unzipped), written by the tests, and a fake WeChat that serves them."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime
from unittest import mock
from zoneinfo import ZoneInfo

from django.conf import settings

from common.money import MILLIFEN_PER_FEN, format_fee, format_fen
from payments.providers.base import NO_BILL, WeChatError
from payments.providers.wechat_v2 import WeChatV2
from payments.providers.wechat_v3 import WeChatV3

BEIJING = ZoneInfo("Asia/Shanghai")
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
COLUMNS = HEADER.split(",")
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def fee_of(fen: int) -> int:
    """WeChat's 0.6% fee, in fen rounded half up."""
    return (fen * 6 + 500) // 1000


def fee_text(fen: int) -> str:
    """A fee as WeChat writes it: five decimals ("0.06000")."""
    return format_fee(fen * MILLIFEN_PER_FEN)


def _at(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def pay_row(out_trade_no: str, amount: int, transaction_id: str, at: datetime, **changes) -> dict[str, str]:
    """A payment line (交易状态 SUCCESS) as a {column: value} dict; `changes` by column name."""
    row = {
        "交易时间": _at(at),
        "公众账号ID": settings.WECHAT_APPID,
        "商户号": settings.WECHAT_MCH_ID,
        "特约商户号": "0",
        "设备号": "",
        "微信订单号": transaction_id,
        "商户订单号": out_trade_no,
        "用户标识": "oTestUser",
        "交易类型": "JSAPI",
        "交易状态": "SUCCESS",
        "付款银行": "CMC",
        "货币种类": "CNY",
        "应结订单金额": format_fen(amount),
        "代金券金额": "0.00",
        "微信退款单号": "0",
        "商户退款单号": "0",
        "退款金额": "0.00",
        "充值券退款金额": "0.00",
        "退款类型": "",
        "退款状态": "",
        "商品名称": "余额充值",
        "商户数据包": "",
        "手续费": fee_text(fee_of(amount)),
        "费率": "0.60%",
        "订单金额": format_fen(amount),
        "申请退款金额": "0.00",
        "费率备注": "",
    }
    return {**row, **changes}


def refund_row(
    out_trade_no: str,
    transaction_id: str,
    out_refund_no: str,
    refund_id: str,
    amount: int,
    at: datetime,
    status: str = "SUCCESS",
    **changes,
) -> dict[str, str]:
    """A refund line (交易状态 REFUND): the time WeChat accepted the refund (not its success), its
    amount, its status when the bill was cut, the fee given back."""
    row = pay_row(out_trade_no, 0, transaction_id, at)
    row.update(
        {
            "交易状态": "REFUND",
            "应结订单金额": "0.00",
            "微信退款单号": refund_id,
            "商户退款单号": out_refund_no,
            "退款金额": format_fen(amount),
            "退款类型": "ORIGINAL",
            "退款状态": status,
            "手续费": fee_text(-fee_of(amount)),
            "订单金额": "0.00",
            "申请退款金额": format_fen(amount),
        }
    )
    return {**row, **changes}


def line(row: dict[str, str]) -> str:
    return ",".join("`" + row[name] for name in COLUMNS)


def fen(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    whole, _, cents = text.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int(cents.ljust(2, "0")))


def millifen(text: str) -> int:
    """A fee of five decimals (or fewer) in thousandths of a fen."""
    sign = -1 if text.startswith("-") else 1
    whole, _, decimals = text.lstrip("-").partition(".")
    return sign * (int(whole) * 100_000 + int(decimals.ljust(5, "0")))


def summary_of(rows: list[dict[str, str]], **changes) -> dict[str, str]:
    values = {
        "总交易单数": str(len(rows)),
        "应结订单总金额": format_fen(sum(fen(r["应结订单金额"]) for r in rows)),
        "退款总金额": format_fen(sum(fen(r["退款金额"]) for r in rows)),
        "充值券退款总金额": "0.00",
        "手续费总金额": format_fee(sum(millifen(r["手续费"]) for r in rows)),
        "订单总金额": format_fen(sum(fen(r["订单金额"]) for r in rows)),
        "申请退款总金额": format_fen(sum(fen(r["申请退款金额"]) for r in rows)),
    }
    return {**values, **changes}


def bill(*rows: dict[str, str] | str, summary: dict[str, str] | None = None, newline: str = "\r\n", bom: bool = False) -> bytes:
    """The whole bill: header, lines (a str is written as given, for malformed lines), summary."""
    dicts = [r for r in rows if isinstance(r, dict)]
    totals = summary or summary_of(dicts)
    lines = [
        HEADER,
        *(r if isinstance(r, str) else line(r) for r in rows),
        SUMMARY_HEADER,
        ",".join("`" + totals[name] for name in SUMMARY_HEADER.split(",")),
    ]
    text = newline.join(lines) + newline
    return (("\ufeff" if bom else "") + text).encode()


def no_bill(message: str = "pay/downloadbill: No Bill Exist") -> WeChatError:
    error = WeChatError(message, "NO_BILL", retryable=True)
    error.kind = NO_BILL
    return error


class FakeWeChat:
    """Answers a bill's download for both API versions from `bills` ({day: bytes or an
    exception}), writing the bytes as the providers do; a day it has nothing for is WeChat's
    "No Bill Exist". `calls` lists the days asked for."""

    def __init__(self):
        self.bills: dict[date, bytes | Exception] = {}
        self.calls: list[date] = []

    def download_bill_to(self, provider, day: date, out) -> None:
        self.calls.append(day)
        answer = self.bills.get(day, no_bill())
        if isinstance(answer, Exception):
            raise answer
        out.write(answer)


@contextmanager
def fake_wechat():
    fake = FakeWeChat()
    with (
        mock.patch.object(WeChatV2, "download_bill_to", autospec=True, side_effect=fake.download_bill_to),
        mock.patch.object(WeChatV3, "download_bill_to", autospec=True, side_effect=fake.download_bill_to),
    ):
        yield fake

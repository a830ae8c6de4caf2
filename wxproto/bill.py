"""WeChat's trade bill (对账单, bill_type ALL) as text: read it, and refuse it unless it verifies.

The format is the same under API v2 (pay/downloadbill) and v3 (tradebill, once
downloaded, its SHA1 checked and unzipped by the provider, payments/providers/):

    交易时间,公众账号ID,商户号,...,费率备注                  the detail header (no back-quotes)
    `2026-11-23 10:00:00,`wx…,`1900000109,...,`            one line per payment or refund
    总交易单数,应结订单总金额,退款总金额,...               the summary header
    `3,`30.00,`5.00,`0.00,`0.15000,`30.00,`5.00            the summary values

Every field of a data line starts with a back-quote and fields are joined by commas, so
fields are split at ",`": a comma or a back-quote later in a field is text. Columns are
found by name, never by position. A bill verifies only if every data line has exactly the
header's number of fields, each with its back-quote, its amounts are plain yuan with at
most two decimals (fees: five, as WeChat writes them, "0.06000"; kept exactly in
millifen), and the summary's count and totals are what the lines add up to. Anything else raises BillInvalid, naming the line:
nothing of such a bill is stored or applied.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from typing import BinaryIO

from wxproto.amounts import format_fee, format_fen
from wxproto.beijing import BEIJING

PAYMENT, REFUND = "payment", "refund"
# A refund line's 退款状态 is its state when the bill was cut (the line is written when the
# refund is requested, and never updated): only these say how the refund ended. REFUNDCLOSE
# is the bills' word; the other closed spellings of WeChat's APIs are taken alike.
REFUND_CLOSED = ("REFUNDCLOSE", "CLOSED", "FAIL", "FAILED")
# 退款异常 (the user's card refused the money), v2's word and v3's: not final either.
REFUND_ABNORMAL = ("CHANGE", "ABNORMAL")
REFUND_FINAL = ("SUCCESS", *REFUND_CLOSED)

# The detail columns we read (the header may have more, in any order).
TIME, APPID, MCH_ID = "交易时间", "公众账号ID", "商户号"
TRANSACTION_ID, OUT_TRADE_NO, TRADE_STATE = "微信订单号", "商户订单号", "交易状态"
AMOUNT, REFUND_ID, OUT_REFUND_NO = "应结订单金额", "微信退款单号", "商户退款单号"
REFUND_AMOUNT, REFUND_STATUS, FEE = "退款金额", "退款状态", "手续费"
# Read where the bill has it (v2 and v3 bills do): how the trade was paid (JSAPI, NATIVE, MWEB …).
TRADE_TYPE = "交易类型"
DETAIL_COLUMNS = (
    TIME,
    APPID,
    MCH_ID,
    TRANSACTION_ID,
    OUT_TRADE_NO,
    TRADE_STATE,
    AMOUNT,
    REFUND_ID,
    OUT_REFUND_NO,
    REFUND_AMOUNT,
    REFUND_STATUS,
    FEE,
)
# The summary columns we check.
COUNT_TOTAL, AMOUNT_TOTAL, REFUND_TOTAL, FEE_TOTAL = "总交易单数", "应结订单总金额", "退款总金额", "手续费总金额"
SUMMARY_COLUMNS = (COUNT_TOTAL, AMOUNT_TOTAL, REFUND_TOTAL, FEE_TOTAL)

# Yuan as WeChat writes it: digits, at most two decimals; fees have five, and a sign where a
# refund gives the fee back.
_YUAN = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,2}))?")
_FEE = re.compile(r"(-?)([0-9]{1,12})(?:\.([0-9]{1,5}))?")
_COUNT = re.compile(r"[0-9]{1,9}")
# An identifier: printable ASCII without spaces, commas or back-quotes, at most 64 characters.
_ID = re.compile(r"[\x21-\x2b\x2d-\x5f\x61-\x7e]{1,64}")
# A line's four required identifiers at once (NUL-joined: NUL is in none of them).
_FOUR_IDS = re.compile("\x00".join([_ID.pattern] * 4))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# A line longer than this is refused rather than read (a detail line is a few hundred bytes).
MAX_LINE_BYTES = 64 * 1024
# 交易时间 on the bill's day: the clock part, read without strptime (a million lines a day).
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])")
_STATE = re.compile(r"[A-Z_]{1,32}")
_TRADE_TYPE = re.compile(r"[A-Z_]{1,16}")
# Shown in a refusal: enough of a bad line to find it, not the whole of a hostile one.
QUOTE_CHARS = 120


class BillInvalid(ValueError):
    """The bill does not verify; the message (Chinese, for operators) says where and why."""


@dataclass(slots=True)
class Row:
    """One detail line: a payment (交易状态 SUCCESS, or another trade state) or a refund (REFUND)."""

    line_no: int
    kind: str
    happened_at: datetime
    appid: str
    mch_id: str
    transaction_id: str
    out_trade_no: str
    trade_state: str
    amount: int  # 应结订单金额, fen
    refund_id: str
    out_refund_no: str
    refund_amount: int  # 退款金额, fen
    refund_status: str
    fee: int  # 手续费, millifen (WeChat writes five decimals); negative when a refund returns it
    raw: str
    trade_type: str = ""  # 交易类型 where the bill has the column

    @property
    def key(self) -> tuple[str, str]:
        """What makes a line one trade: the transaction id of a payment, the refund id of a refund."""
        if self.kind == REFUND:
            return REFUND, self.refund_id or self.out_refund_no
        return PAYMENT, self.transaction_id


@dataclass
class Bill:
    rows: list[Row]
    count: int  # 总交易单数
    paid: int  # 应结订单总金额, fen
    refunded: int  # 退款总金额, fen
    fee: int  # 手续费总金额, millifen
    duplicates: dict[tuple[str, str], list[Row]] = field(default_factory=dict)

    @property
    def unique_rows(self) -> list[Row]:
        """Each trade once: the first line of a trade that appears twice."""
        seen: set[tuple[str, str]] = set()
        rows = []
        for row in self.rows:
            if row.key not in seen:
                seen.add(row.key)
                rows.append(row)
        return rows

    @property
    def refunds_in_flight(self) -> list[Row]:
        """Refund lines not finished when the bill was cut (PROCESSING, or CHANGE: WeChat never
        updates a refund's status in a bill once published); each refund once."""
        return [row for row in self.unique_rows if row.kind == REFUND and row.refund_status not in REFUND_FINAL]

    @property
    def payment_count(self) -> int:
        return sum(1 for row in self.rows if row.kind == PAYMENT)

    @property
    def refund_count(self) -> int:
        return sum(1 for row in self.rows if row.kind == REFUND)


def _quote(line: str) -> str:
    return line if len(line) <= QUOTE_CHARS else line[:QUOTE_CHARS] + "…"


def _fields(line: str, line_no: int, width: int) -> list[str]:
    """A back-quoted line's values. Each value starts with a back-quote, so values are
    separated by ",`": a comma inside a value (a 商品名称 such as "充值,月卡", published by
    WeChat as the merchant sent it) is text, and so is a back-quote later in a value. A value
    holding ",`" makes one field too many, and a missing back-quote a malformed line."""
    if line.startswith("`"):
        parts = line[1:].split(",`")
        if len(parts) == width:
            return parts
    plain = line.split(",")
    missing = next((n for n, part in enumerate(plain, 1) if not part.startswith("`")), None)
    if missing is not None and len(plain) == width:
        raise BillInvalid(f"第 {line_no} 行格式错误：第 {missing} 个字段不以反引号开头：{_quote(line)}")
    count = len(line[1:].split(",`")) if line.startswith("`") else len(plain)
    raise BillInvalid(
        f"第 {line_no} 行格式错误：应有 {width} 个字段，实有 {count} 个（字段内可能含有「,`」或缺少反引号）：{_quote(line)}"
    )


def _yuan(value: str, line_no: int, column: str) -> int:
    """An amount in fen: plain yuan, at most two decimals, never negative."""
    fen = _fen_of(value)
    if fen is None:
        raise BillInvalid(f"第 {line_no} 行「{column}」不是有效金额：{_quote(value)!r}")
    return fen


def _fee(value: str, line_no: int, column: str) -> int:
    """A fee in millifen: WeChat writes fees to five decimals of a yuan ("0.06000", "-0.01000",
    or "0" in old bills), read exactly."""
    millifen = _millifen_of(value)
    if millifen is None:
        raise BillInvalid(f"第 {line_no} 行「{column}」不是有效金额：{_quote(value)!r}")
    return millifen


# A day's amounts, fees and times repeat: each text is read once (the caches are bounded: at
# most this many texts each, a day has 86,400 seconds).
@lru_cache(maxsize=16_384)
def _fen_of(value: str) -> int | None:
    match = _YUAN.fullmatch(value)
    return None if match is None else int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))


@lru_cache(maxsize=16_384)
def _millifen_of(value: str) -> int | None:
    match = _FEE.fullmatch(value)
    if match is None:
        return None
    millifen = int(match[2]) * 100_000 + int((match[3] or "0").ljust(5, "0"))
    return -millifen if match[1] else millifen


@lru_cache(maxsize=90_000)
def _time_on(day: date, when: str) -> datetime | None:
    """`when` ("YYYY-MM-DD HH:MM:SS") on `day`, in Beijing time; None if it is not a time of that day."""
    clock = _CLOCK.fullmatch(when, 11) if when.startswith(day.isoformat() + " ") else None
    if clock is None:
        return None
    return datetime(day.year, day.month, day.day, int(clock[1]), int(clock[2]), int(clock[3]), tzinfo=BEIJING)


def _id(value: str, line_no: int, column: str, required: bool) -> str:
    """An identifier; "" for empty (WeChat writes "0" for a payment line's refund ids)."""
    if value in ("", "0") and not required:
        return ""
    if not _ID.fullmatch(value):
        raise BillInvalid(f"第 {line_no} 行「{column}」无效：{_quote(value)!r}")
    return value


def _columns(header: str, line_no: int, needed: tuple[str, ...], what: str) -> dict[str, int]:
    if "`" in header:
        raise BillInvalid(f"第 {line_no} 行（{what}）不应含有反引号：{_quote(header)}")
    names = [name.strip() for name in header.split(",")]
    missing = [name for name in needed if name not in names]
    if missing:
        raise BillInvalid(f"第 {line_no} 行（{what}）缺少列：{'、'.join(missing)}")
    duplicated = sorted({name for name in names if names.count(name) > 1 and name in needed})
    if duplicated:
        raise BillInvalid(f"第 {line_no} 行（{what}）列名重复：{'、'.join(duplicated)}")
    return {name: n for n, name in enumerate(names)}


def _taker(columns: dict[str, int]) -> itemgetter:
    """The DETAIL_COLUMNS of a line's values, in that order, taken at once."""
    return itemgetter(*(columns[name] for name in DETAIL_COLUMNS))


def _row(values: list[str], columns: dict[str, int], line_no: int, line: str, day: date | None, take=None) -> Row:
    """One detail line's values, verified (a million lines a day: the columns are taken at once
    by `take`, the checks are compiled patterns, and the time is read without strptime on the
    bill's day, and a text read once is not read again)."""
    take = take or _taker(columns)
    when, appid, mch_id, txn, out_trade_no, trade_state, amount, refund_id, out_refund_no, refund_amount, refund_status, fee = (
        take(values)
    )
    happened = _time_on(day, when) if day is not None else None
    if happened is not None:
        happened_at = happened
    else:
        try:
            happened_at = datetime.strptime(when, TIME_FORMAT).replace(tzinfo=BEIJING)  # Beijing time
        except ValueError:
            raise BillInvalid(f"第 {line_no} 行「{TIME}」无效：{_quote(when)!r}") from None
        if day is not None and happened_at.date() != day:
            raise BillInvalid(f"第 {line_no} 行的交易时间 {when} 不在账单日 {day.isoformat()}")
    kind = REFUND if trade_state == "REFUND" else PAYMENT
    if not _STATE.fullmatch(trade_state):
        raise BillInvalid(f"第 {line_no} 行「{TRADE_STATE}」无效：{_quote(trade_state)!r}")
    if refund_status and not _STATE.fullmatch(refund_status):
        raise BillInvalid(f"第 {line_no} 行「{REFUND_STATUS}」无效：{_quote(refund_status)!r}")
    if kind == REFUND and not refund_status:
        raise BillInvalid(f"第 {line_no} 行是退款，但没有「{REFUND_STATUS}」")
    is_refund = kind == REFUND
    if not _FOUR_IDS.fullmatch(f"{appid}\x00{mch_id}\x00{txn}\x00{out_trade_no}"):  # one of them is wrong: which
        _id(appid, line_no, APPID, required=True)
        _id(mch_id, line_no, MCH_ID, required=True)
        _id(txn, line_no, TRANSACTION_ID, required=True)
        _id(out_trade_no, line_no, OUT_TRADE_NO, required=True)
    return Row(
        line_no,
        kind,
        happened_at,
        appid,
        mch_id,
        txn,
        out_trade_no,
        trade_state,
        _yuan(amount, line_no, AMOUNT),
        _id(refund_id, line_no, REFUND_ID, required=is_refund),
        _id(out_refund_no, line_no, OUT_REFUND_NO, required=is_refund),
        _yuan(refund_amount, line_no, REFUND_AMOUNT),
        refund_status if is_refund else "",
        _fee(fee, line_no, FEE),
        line,
        _trade_type(values, columns, line_no),
    )


def _trade_type(values: list[str], columns: dict[str, int], line_no: int) -> str:
    if TRADE_TYPE not in columns:
        return ""
    value = values[columns[TRADE_TYPE]]
    if value and not _TRADE_TYPE.fullmatch(value):
        raise BillInvalid(f"第 {line_no} 行「{TRADE_TYPE}」无效：{_quote(value)!r}")
    return value


class Reader:
    """A trade bill read from a binary stream one line at a time, never whole in memory (a
    day of a million trades is a few hundred megabytes of text).

    Iterating gives the detail rows in order, each verified as `parse` verifies it; when the
    rows are done, the summary is read and checked against what they added up to, and `bill`
    holds the totals (its `rows` empty). Any fault raises BillInvalid where it is met: a
    caller storing rows as they come stores them in one transaction, so that a bill refused
    at its last line leaves nothing behind. With `day`, every 交易时间 must fall on it.
    """

    def __init__(self, stream: BinaryIO, day: date | None = None):
        self._stream = stream
        self._day = day
        self.line_no = 0
        self.bill: Bill | None = None
        self.payment_count = self.refund_count = 0
        self._paid = self._refunded = self._fee = 0

    def _lines(self) -> Iterator[str]:
        """The stream's lines without their line ends (CRLF or LF; a leading BOM dropped)."""
        while True:
            data = self._stream.readline(MAX_LINE_BYTES + 1)
            if not data:
                return
            self.line_no += 1
            if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
                raise BillInvalid(f"第 {self.line_no} 行过长（超过 {MAX_LINE_BYTES} 字节）")
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError:
                raise BillInvalid(f"账单不是 UTF-8 文本（第 {self.line_no} 行）") from None
            if self.line_no == 1:
                line = line.removeprefix("\ufeff")
            yield line.removesuffix("\n").removesuffix("\r")

    def __iter__(self) -> Iterator[Row]:
        lines = self._lines()
        header = next(lines, None)
        if header is None or (not header.strip() and self._only_blank(lines)):
            raise BillInvalid("账单为空")
        if header.startswith(COUNT_TOTAL):
            raise BillInvalid("第 1 行应为明细表头")
        columns = _columns(header, 1, DETAIL_COLUMNS, "明细表头")
        take = _taker(columns)
        width = len(header.split(","))
        day = self._day
        for line in lines:
            if line.startswith(COUNT_TOTAL):
                self._summary(line, lines)
                return
            if not line.strip():
                blank_no = self.line_no
                if self._only_blank(lines):
                    break
                raise BillInvalid(f"第 {blank_no} 行为空行")
            row = _row(_fields(line, self.line_no, width), columns, self.line_no, line, day, take)
            if row.kind == REFUND:
                self.refund_count += 1
            else:
                self.payment_count += 1
            self._paid += row.amount
            self._refunded += row.refund_amount
            self._fee += row.fee
            yield row
        raise BillInvalid("账单不完整：没有汇总行（下载可能中断）")

    @staticmethod
    def _only_blank(lines: Iterator[str]) -> bool:
        """Whether the rest is blank lines (trailing blank lines end a bill)."""
        return not any(line.strip() for line in lines)

    def _summary(self, header: str, lines: Iterator[str]) -> None:
        header_no = self.line_no
        summary_columns = _columns(header, header_no, SUMMARY_COLUMNS, "汇总表头")
        values_line = next(lines, None)
        values_at = self.line_no
        if values_line is None or (not values_line.strip() and self._only_blank(lines)):
            raise BillInvalid("账单不完整：汇总表头后没有汇总数据（下载可能中断）")
        for extra in lines:
            if extra.strip():
                raise BillInvalid(f"第 {self.line_no} 行：汇总数据之后不应再有内容：{_quote(extra)}")
        values = _fields(values_line, values_at, len(header.split(",")))

        def total(name: str) -> int:
            return _yuan(values[summary_columns[name]], values_at, name)

        count_text = values[summary_columns[COUNT_TOTAL]]
        if not _COUNT.fullmatch(count_text):
            raise BillInvalid(f"第 {values_at} 行「{COUNT_TOTAL}」无效：{_quote(count_text)!r}")
        bill = Bill(
            rows=[],
            count=int(count_text),
            paid=total(AMOUNT_TOTAL),
            refunded=total(REFUND_TOTAL),
            fee=_fee(values[summary_columns[FEE_TOTAL]], values_at, FEE_TOTAL),
        )
        _check_summary(bill, self.payment_count + self.refund_count, self._paid, self._refunded, self._fee)
        self.bill = bill


def parse(data: bytes, day: date | None = None) -> Bill:
    """Read and verify a whole trade bill held in memory (the bytes WeChat sent; UTF-8, a BOM
    allowed, CRLF or LF), with its rows and duplicates: for small bills and tests;
    reconciliation streams (`Reader`). With `day`, every line's 交易时间 must fall on it
    (Beijing). Raises BillInvalid."""
    reader = Reader(io.BytesIO(data), day)
    rows = list(reader)
    assert reader.bill is not None  # the iteration ended at a checked summary
    bill = reader.bill
    bill.rows = rows
    by_key: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    bill.duplicates = {key: same for key, same in by_key.items() if len(same) > 1}
    return bill


def _check_summary(bill: Bill, count: int, paid: int, refunded: int, fee: int) -> None:
    sums: dict[str, tuple[int, int, Callable[[int], str]]] = {
        COUNT_TOTAL: (bill.count, count, str),
        AMOUNT_TOTAL: (bill.paid, paid, format_fen),
        REFUND_TOTAL: (bill.refunded, refunded, format_fen),
        FEE_TOTAL: (bill.fee, fee, format_fee),
    }
    wrong = [f"{name} {show(said)}，明细合计 {show(found)}" for name, (said, found, show) in sums.items() if said != found]
    if wrong:
        raise BillInvalid("汇总与明细不符：" + "；".join(wrong))

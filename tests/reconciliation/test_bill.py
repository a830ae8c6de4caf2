"""Reading a trade bill: by column name, strictly, and refusing any bill that does not verify
(naming the line), so that nothing of it is ever applied."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.reconciliation.bills import (
    BEIJING,
    COLUMNS,
    HEADER,
    SUMMARY_HEADER,
    bill,
    line,
    pay_row,
    refund_row,
    summary_of,
)
from tests.reconciliation.conftest import DAY
from wxproto.bill import PAYMENT, REFUND, BillInvalid, parse

AT = datetime(2026, 11, 23, 10, 0, tzinfo=BEIJING)
TXN, OTN = "4200000000202611230000000001", "20261123100000101234567890"


def two_rows():
    return [
        pay_row(OTN, 1000, TXN, AT),
        refund_row(OTN, TXN, "RF2026112311000000000000000001", "50300000002026112300000000001", 300, AT.replace(hour=11)),
    ]


def refused(data: bytes) -> str:
    with pytest.raises(BillInvalid) as error:
        parse(data, DAY)
    return str(error.value)


def test_a_bill_is_read_by_column_name_with_amounts_in_fen_and_fees_in_millifen():
    parsed = parse(bill(*two_rows()), DAY)
    payment, refund = parsed.rows
    assert "`0.06000,`0.60%," in payment.raw  # as WeChat writes a fee: five decimals
    assert (payment.kind, payment.out_trade_no, payment.transaction_id, payment.amount, payment.fee) == (
        PAYMENT,
        OTN,
        TXN,
        1000,
        6000,
    )
    assert payment.refund_id == payment.out_refund_no == ""  # WeChat writes "0" on a payment line
    assert (refund.kind, refund.out_refund_no, refund.refund_amount, refund.refund_status, refund.fee, refund.amount) == (
        REFUND,
        "RF2026112311000000000000000001",
        300,
        "SUCCESS",
        -2000,
        0,
    )
    assert refund.happened_at == AT.replace(hour=11) and refund.line_no == 3
    assert (parsed.count, parsed.paid, parsed.refunded, parsed.fee) == (2, 1000, 300, 4000)
    assert not parsed.duplicates


def test_columns_may_come_in_any_order():
    rows = two_rows()
    order = list(reversed(COLUMNS))
    text = "\r\n".join(
        [
            ",".join(order),
            *(",".join("`" + r[name] for name in order) for r in rows),
            SUMMARY_HEADER,
            ",".join("`" + v for v in summary_of(rows).values()),
        ]
    )
    assert [r.amount for r in parse(text.encode(), DAY).rows] == [1000, 0]


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_a_bom_and_either_line_ending_are_accepted(newline):
    assert len(parse(bill(*two_rows(), newline=newline, bom=True), DAY).rows) == 2


def test_a_back_quote_inside_a_text_field_is_kept_as_text():
    row = pay_row(OTN, 1000, TXN, AT, 商品名称="余额`充值", 商户数据包="a`b`c")
    parsed = parse(bill(row), DAY)
    assert "余额`充值" in parsed.rows[0].raw and parsed.rows[0].amount == 1000


def test_an_empty_day_has_a_header_and_a_zero_summary():
    parsed = parse(bill(), DAY)
    assert parsed.rows == [] and parsed.count == 0


# -- refused ---------------------------------------------------------------------------------------


def test_a_comma_inside_a_text_field_is_kept_as_text():
    # WeChat publishes the merchant's 商品名称 and 商户数据包 as sent, commas included.
    row = pay_row(OTN, 1000, TXN, AT, 商品名称="余额,充值", 商户数据包="a,b")
    parsed = parse(bill(line(row), summary=summary_of([row])))
    assert [(r.out_trade_no, r.amount) for r in parsed.rows] == [(OTN, 1000)]


def test_a_stray_comma_in_an_amount_is_refused():
    good = pay_row(OTN, 1000, TXN, AT)
    message = refused(bill(line(good).replace("`10.00,", "`10,00,", 1), summary=summary_of([good])))
    assert message.startswith("第 2 行") and "应结订单金额" in message


def test_a_comma_and_back_quote_cannot_smuggle_a_field():
    # "余额,`0.01" would look like two back-quoted fields: one too many.
    row = line(pay_row(OTN, 1000, TXN, AT, 商品名称="余额,`0.01"))
    assert "第 2 行格式错误" in refused(bill(row, summary=summary_of([pay_row(OTN, 1000, TXN, AT)])))


def test_a_field_without_its_back_quote_is_a_malformed_line():
    good = pay_row(OTN, 1000, TXN, AT)
    row = line(good).replace("`SUCCESS", "SUCCESS")
    assert "第 2 行格式错误：第 10 个字段不以反引号开头" in refused(bill(row, summary=summary_of([good])))


def test_a_back_quote_inside_an_identifier_or_amount_is_refused():
    assert "「商户订单号」无效" in refused(bill(pay_row(OTN + "`x", 1000, TXN, AT)))
    good = pay_row(OTN, 1000, TXN, AT)
    assert "「应结订单金额」不是有效金额" in refused(
        bill(line(good).replace("`10.00,", "`10`.00,", 1), summary=summary_of([good]))
    )


@pytest.mark.parametrize("amount", ["10.001", "1,000.00", "¥10.00", " 10.00", "10.00 ", "-10.00", "1e3", "", "１０.00"])
def test_an_amount_that_is_not_plain_yuan_is_refused(amount):
    good = pay_row(OTN, 1000, TXN, AT)
    row = {**good, "应结订单金额": amount}
    # A comma makes one field too many; anything else is not an amount.
    assert refused(bill(line(row), summary=summary_of([good]))).startswith("第 2 行")


def test_only_the_fee_may_be_negative():
    row = pay_row(OTN, 1000, TXN, AT, 手续费="-0.06000")
    assert parse(bill(row), DAY).rows[0].fee == -6000


@pytest.mark.parametrize(
    ("text", "millifen"),
    [
        ("0.06000", 6000),
        ("0.00000", 0),
        ("0", 0),
        ("0.06", 6000),
        ("0.06123", 6123),
        ("-0.01000", -1000),
        ("12.34567", 1234567),
    ],
)
def test_a_fee_is_read_exactly_to_five_decimals(text, millifen):
    """WeChat writes fees with five decimals (older bills: fewer); never read as a float."""
    row = pay_row(OTN, 1000, TXN, AT, 手续费=text)
    parsed = parse(bill(row), DAY)
    assert parsed.rows[0].fee == parsed.fee == millifen


@pytest.mark.parametrize("text", ["0.060000", "0,06", "0.06%", "", "+0.06", "0.0６"])
def test_a_fee_that_is_not_yuan_to_five_decimals_is_refused(text):
    good = pay_row(OTN, 1000, TXN, AT)
    assert refused(bill(line({**good, "手续费": text}), summary=summary_of([good]))).startswith("第 2 行")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("总交易单数", "3", "总交易单数 3，明细合计 2"),
        ("应结订单总金额", "10.01", "应结订单总金额 10.01，明细合计 10.00"),
        ("退款总金额", "0.00", "退款总金额 0.00，明细合计 3.00"),
        ("手续费总金额", "0.06000", "手续费总金额 0.06000，明细合计 0.04000"),
    ],
)
def test_a_summary_that_does_not_add_up_is_refused(field, value, expected):
    rows = two_rows()
    message = refused(bill(*rows, summary=summary_of(rows, **{field: value})))
    assert message.startswith("汇总与明细不符") and expected in message


def test_a_bill_cut_short_has_no_summary():
    text = bill(*two_rows()).decode()
    cut = text[: text.index("总交易单数")]
    assert "没有汇总行" in refused(cut.encode())
    assert "汇总表头后没有汇总数据" in refused(text[: text.rindex("`" + "2,")].encode())


def test_lines_after_the_summary_are_refused():
    assert "汇总数据之后不应再有内容" in refused(bill(*two_rows()) + b"`extra\r\n")


def test_a_header_without_the_columns_we_need_is_refused():
    text = bill(*two_rows()).decode().replace("商户订单号,", "商户单号,", 1)
    assert refused(text.encode()) == "第 1 行（明细表头）缺少列：商户订单号"


def test_a_bill_that_is_not_utf8_is_refused():
    assert "不是 UTF-8" in refused(HEADER.encode("gbk") + b"\r\n")


def test_a_line_of_another_day_is_refused():
    row = pay_row(OTN, 1000, TXN, datetime(2026, 11, 24, 0, 0, 1, tzinfo=BEIJING))
    assert "不在账单日 2026-11-23" in refused(bill(row))


def test_an_empty_line_inside_the_details_is_refused():
    text = bill(*two_rows()).decode().replace("\r\n", "\r\n\r\n", 1)
    assert "第 2 行为空行" in refused(text.encode())


def test_a_refused_line_is_quoted_but_not_all_of_a_long_one():
    good = pay_row(OTN, 1000, TXN, AT)
    row = line({**good, "商品名称": "x" * 5000}) + ",`extra"
    message = refused(bill(row, summary=summary_of([good])))
    assert len(message) < 400 and message.endswith("…")


def test_a_trade_twice_in_one_bill_is_found():
    rows = [*two_rows(), pay_row(OTN, 1000, TXN, AT)]
    parsed = parse(bill(*rows), DAY)
    assert parsed.count == 3 and parsed.paid == 2000
    assert [r.line_no for r in parsed.duplicates[(PAYMENT, TXN)]] == [2, 4]
    assert [r.line_no for r in parsed.unique_rows] == [2, 3]


def test_a_lines_trade_type_is_read_where_the_bill_has_it():
    native = pay_row("20261123100000101234567891", 500, "4200000000202611230000000002", AT, **{"交易类型": "NATIVE"})
    rows = parse(bill(pay_row(OTN, 1000, TXN, AT), native), DAY).rows
    assert [r.trade_type for r in rows] == ["JSAPI", "NATIVE"]


def test_a_garbled_trade_type_refuses_the_bill():
    assert "「交易类型」无效" in refused(bill(pay_row(OTN, 1000, TXN, AT, **{"交易类型": "扫码"})))

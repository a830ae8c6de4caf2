"""The trade bill (交易账单 / 对账单) of a Beijing day, from the sandbox's own trades and refunds.

One text for both API versions: v2 `pay/downloadbill` answers it as is, v3 `tradebill`
hashes it (SHA1) and its download URL serves it (gzipped when asked). The format is
WeChat's, and a contract with the merchant's parser (wxproto/bill.py):

- UTF-8, lines joined by "\\r\\n" (and one at the end);
- line 1, the detail header (no back-quotes): 交易时间,公众账号ID,…,费率备注 (27 columns);
- one line per detail row, every field prefixed with a back-quote, joined by commas. A
  field is written as it is, commas and back-quotes included: the merchant's body and
  attach go in 商品名称 and 商户数据包 untouched, as WeChat writes them (a comma there
  makes a line with too many fields, which the merchant has to cope with);
- the summary header 总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,
  申请退款总金额, and a line of its back-quoted values: the number of detail rows, the sums
  of 应结订单金额, 退款金额 and 手续费 (five decimals) over every row, "0.00", the sum of
  订单金额 over the payment rows, the sum of 申请退款金额.

Rows, in time order:
- a payment row for each paid trade (SUCCESS, or REFUND once refunds began) whose
  time_end falls on the day: 交易状态 SUCCESS, 应结订单金额 = 订单金额 = the amount in yuan,
  refund columns "0" / "0.00" / empty, 手续费 = 0.6% of the amount rounded half up to the
  fen and written, as WeChat does, with five decimals ("0.06000"), 费率 "0.60%";
- a refund row for each refund WeChat accepted on the day, whatever became of it: WeChat
  writes a refund into the bill of the day it was requested (交易时间 is the request time,
  not the success time) and never updates it, so its 退款状态 is the state it had when the
  bill was cut (09:00 the next day, or now if that is earlier): SUCCESS, REFUNDCLOSE or
  CHANGE if it had ended by then, PROCESSING otherwise. 交易状态 REFUND, the trade's ids,
  应结订单金额 "0.00", 订单金额 the trade's amount, 微信退款单号, 商户退款单号, 退款金额 =
  申请退款金额 = the refund's amount, 退款类型 ORIGINAL, 手续费 minus the fee given back.
bill_type SUCCESS keeps the payment rows only, REFUND the refund rows only. A bill without
rows does not exist (NoBill: v2 "No Bill Exist", v3 400 NO_STATEMENT_EXIST).

Fault switches (sandbox.models.Fault), read each time a bill is asked for. For a trade,
its own row or else the global row, as for every switch:
- `bill_omit`: the trade and its refunds are left out of the bills;
- `bill_total_fee` (fen): the bill reports this amount for the trade (its payment row's
  应结订单金额, 订单金额 and fee; its refund rows' 订单金额), the summary adding it up;
- `bill_duplicate_row`: the trade's payment row appears twice; the summary counts both,
  as WeChat's would.
The global row's alone (set on a trade's row they are refused, see Fault.clean):
- `bill_add_unknown_trade`: ALL and SUCCESS bills that have rows get one more payment
  row, for a trade the merchant never placed (made-up out_trade_no and transaction id,
  the same for the same day at every download, ¥8.88), counted in the summary;
- `bill_corrupt_summary`: the summary's 应结订单总金额 is 0.01 more than the rows add up
  to, so that the bill does not verify;
- `bill_not_ready`: there is no bill yet, whatever the day (NotReady: v2 "Bill Creating",
  v3 400 STATEMENT_CREATING), as WeChat answers before 10:00 the next day.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from common.money import MILLIFEN_PER_FEN, format_fee, format_fen
from devtools.wechat_sandbox import services
from devtools.wechat_sandbox.models import Fault, Refund, Trade

BILL_TYPES = ("ALL", "SUCCESS", "REFUND")
HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
FEE_RATE_TEXT = "0.60%"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# WeChat starts making a day's bill at 09:00 the next day (and serves it from about 10:00): a
# refund line says how the refund stood then.
BILL_CUT = time(9, 0)
UNKNOWN_TRADE_FEN = 888  # what the made-up trade of bill_add_unknown_trade paid


class NoBill(Exception):
    """No payment nor refund on the day (after the switches): WeChat has no bill."""


class NotReady(Exception):
    """The bill is being made (the bill_not_ready switch)."""


def fee_of(fen: int) -> int:
    """WeChat's 0.6% fee in fen, rounded half up (四舍五入)."""
    return (fen * 6 + 500) // 1000


@dataclass
class Line:
    """One detail row: its fields in header order, and the amounts the summary adds up (fen)."""

    at: datetime
    fields: list[str]
    settled: int = 0  # 应结订单金额
    refunded: int = 0  # 退款金额
    fee: int = 0  # 手续费
    ordered: int = 0  # 订单金额 of a payment row (0 for a refund row: only payments count in 订单总金额)
    requested: int = 0  # 申请退款金额
    order: int = 0  # payments before refunds at the same second

    def text(self) -> str:
        return ",".join("`" + value for value in self.fields)


def _beijing(moment: datetime) -> str:
    return services.beijing(moment, TIME_FORMAT)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing day."""
    start = datetime.combine(day, time.min, tzinfo=services.BEIJING)
    return start, start + timedelta(days=1)


def _payment(trade: Trade, amount: int) -> Line:
    fee = fee_of(amount)
    values = [
        _beijing(trade.time_end),
        trade.appid,
        trade.mch_id,
        "0",
        "",
        trade.transaction_id or "",
        trade.out_trade_no,
        trade.openid,
        trade.trade_type,
        "SUCCESS",
        "CMC",
        "CNY",
        format_fen(amount),
        "0.00",
        "0",
        "0",
        "0.00",
        "0.00",
        "",
        "",
        trade.body,
        trade.attach,
        _fee(fee),
        FEE_RATE_TEXT,
        format_fen(amount),
        "0.00",
        "",
    ]
    return Line(at=trade.time_end, fields=values, settled=amount, fee=fee, ordered=amount)


def _fee(fen: int) -> str:
    """A fee as WeChat's bills write it: rounded to the fen, five decimals ("0.06000")."""
    return format_fee(fen * MILLIFEN_PER_FEN)


def status_at(refund: Refund, cut: datetime) -> str:
    """The refund's 退款状态 as it stood at `cut` (a bill never updates it afterwards)."""
    if refund.state == Refund.SUCCESS:
        ended = refund.success_time
    elif refund.state in (Refund.REFUNDCLOSE, Refund.CHANGE):
        ended = refund.settle_at or refund.created_at
    else:
        return Refund.PROCESSING
    return refund.state if ended is not None and ended <= cut else Refund.PROCESSING


def _refund(refund: Refund, trade_amount: int, cut: datetime) -> Line:
    trade, amount = refund.trade, refund.refund_fee
    fee = -fee_of(amount)
    values = [
        _beijing(refund.created_at),
        trade.appid,
        trade.mch_id,
        "0",
        "",
        trade.transaction_id or "",
        trade.out_trade_no,
        trade.openid,
        trade.trade_type,
        "REFUND",
        "CMC",
        "CNY",
        "0.00",
        "0.00",
        refund.refund_id,
        refund.out_refund_no,
        format_fen(amount),
        "0.00",
        "ORIGINAL",
        status_at(refund, cut),
        trade.body,
        trade.attach,
        _fee(fee),
        FEE_RATE_TEXT,
        format_fen(trade_amount),
        format_fen(amount),
        "",
    ]
    return Line(at=refund.created_at, fields=values, refunded=amount, fee=fee, requested=amount, order=1)


def _faults(out_trade_nos: set[str]) -> tuple[dict[str, Fault], Fault]:
    """Each trade's switches (its own row, else the global one) and the global row."""
    rows = {f.out_trade_no: f for f in Fault.objects.filter(out_trade_no__in=[*out_trade_nos, ""])}
    overall = rows.get("") or Fault()
    return {no: rows.get(no) or overall for no in out_trade_nos}, overall


def unknown_ids(mch_id: str, day: date) -> tuple[str, str]:
    """The made-up out_trade_no and transaction id of bill_add_unknown_trade: the same for
    the same merchant and day at every download (so that a rerun sees the same trade)."""
    digest = hashlib.sha256(f"{mch_id}:{day.isoformat()}:unknown".encode()).hexdigest()
    stamp = day.strftime("%Y%m%d")
    return f"SBXUNKNOWN{stamp}{digest[:6].upper()}", f"4200{stamp}{int(digest[6:22], 16) % 10**16:016d}"


def _unknown(mch_id: str, appid: str, day: date, at: datetime) -> Line:
    out_trade_no, transaction_id = unknown_ids(mch_id, day)
    trade = Trade(
        mch_id=mch_id,
        appid=appid,
        out_trade_no=out_trade_no,
        transaction_id=transaction_id,
        body="余额充值",
        attach="",
        total_fee=UNKNOWN_TRADE_FEN,
        trade_type="JSAPI",
        openid="oSandboxUnknownPayer0000000",
        time_end=at,
    )
    return _payment(trade, UNKNOWN_TRADE_FEN)


def bill_text(mch_id: str, appid: str, day: date, bill_type: str = "ALL") -> str:
    """The bill of a Beijing day for one merchant (`appid`: the app of a made-up trade).

    Raises NotReady (bill_not_ready) or NoBill (nothing on the day)."""
    if bill_type not in BILL_TYPES:
        raise ValueError(f"bill_type {bill_type!r}")
    start, end = day_bounds(day)
    trades = list(
        Trade.objects.filter(
            mch_id=mch_id, state__in=[Trade.SUCCESS, Trade.REFUND], time_end__gte=start, time_end__lt=end
        ).order_by("time_end", "pk")
    )
    refunds = list(
        Refund.objects.select_related("trade")
        .filter(
            trade__mch_id=mch_id,
            created_at__gte=start,
            created_at__lt=end,
        )
        .order_by("created_at", "pk")
    )
    cut = min(datetime.combine(day + timedelta(days=1), BILL_CUT, tzinfo=services.BEIJING), timezone.now())
    switches, overall = _faults({t.out_trade_no for t in trades} | {r.trade.out_trade_no for r in refunds})
    if overall.bill_not_ready:
        raise NotReady("Bill Creating")

    def amount(trade: Trade) -> int:
        reported = switches[trade.out_trade_no].bill_total_fee
        return trade.total_fee if reported is None else reported

    lines: list[Line] = []
    if bill_type in ("ALL", "SUCCESS"):
        for trade in trades:
            fault = switches[trade.out_trade_no]
            if fault.bill_omit:
                continue
            line = _payment(trade, amount(trade))
            lines += [line, line] if fault.bill_duplicate_row else [line]
    if bill_type in ("ALL", "REFUND"):
        lines += [_refund(r, amount(r.trade), cut) for r in refunds if not switches[r.trade.out_trade_no].bill_omit]
    lines.sort(key=lambda line: (line.at.replace(microsecond=0), line.order))  # stable: a duplicate stays beside its row
    if lines and overall.bill_add_unknown_trade and bill_type in ("ALL", "SUCCESS"):
        lines.insert(0, _unknown(mch_id, appid, day, lines[0].at))
    if not lines:
        raise NoBill("No Bill Exist")
    settled = sum(line.settled for line in lines)
    if overall.bill_corrupt_summary:
        settled += 1
    summary = [
        str(len(lines)),
        format_fen(settled),
        format_fen(sum(line.refunded for line in lines)),
        "0.00",
        _fee(sum(line.fee for line in lines)),
        format_fen(sum(line.ordered for line in lines)),
        format_fen(sum(line.requested for line in lines)),
    ]
    text = [HEADER, *(line.text() for line in lines), SUMMARY_HEADER, ",".join("`" + value for value in summary)]
    return "\r\n".join(text) + "\r\n"

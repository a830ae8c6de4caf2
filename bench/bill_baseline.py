"""The bare baseline of bench/bill_scale.py: a day's bill into PostgreSQL with COPY, and one
join each way finding its differences with our orders and refunds. Nothing is stored or
settled; it prints one line per difference: "<kind> <out_trade_no>".

    .venv/bin/python bench/bill_baseline.py postgres://… /path/to/bill.csv 2026-11-23
"""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

COLUMNS = 27  # the bill's detail columns (bench/bill_scale.py HEADER)
FIND = """
WITH b AS (
    SELECT substr(c6, 2) AS txn, substr(c7, 2) AS otn, substr(c10, 2) AS state,
           round(substr(c13, 2)::numeric * 100) AS amount, substr(c16, 2) AS orn,
           round(substr(c17, 2)::numeric * 100) AS refund_amount
    FROM bill
), pays AS (
    SELECT * FROM b WHERE state = 'SUCCESS'
), ours AS (
    SELECT id, out_trade_no, transaction_id, amount FROM orders_rechargeorder WHERE paid_at >= %(start)s AND paid_at < %(end)s
), refunds AS (
    SELECT r.out_refund_no, r.amount, o.out_trade_no FROM orders_refund r JOIN orders_rechargeorder o ON o.id = r.order_id
    WHERE r.accepted_at >= %(start)s AND r.accepted_at < %(end)s
)
SELECT DISTINCT kind, otn FROM (
    SELECT 'duplicate' AS kind, otn FROM pays GROUP BY txn, otn HAVING count(*) > 1
    UNION ALL
    SELECT CASE WHEN o.id IS NULL THEN 'unknown_order' WHEN o.transaction_id IS NULL THEN 'missed_payment'
                WHEN o.transaction_id <> p.txn THEN 'transaction' ELSE 'amount' END, p.otn
    FROM pays p LEFT JOIN orders_rechargeorder o ON o.out_trade_no = p.otn
    WHERE o.id IS NULL OR o.transaction_id IS NULL OR o.transaction_id <> p.txn OR o.amount <> p.amount
    UNION ALL
    SELECT 'missing_payment', o.out_trade_no FROM ours o WHERE NOT EXISTS (SELECT 1 FROM pays p WHERE p.otn = o.out_trade_no)
    UNION ALL
    SELECT CASE WHEN r.out_refund_no IS NULL THEN 'unknown_refund' ELSE 'refund_amount' END, b.otn
    FROM b LEFT JOIN refunds r ON r.out_refund_no = b.orn
    WHERE b.state = 'REFUND' AND (r.out_refund_no IS NULL OR r.amount <> b.refund_amount)
    UNION ALL
    SELECT 'missing_refund', r.out_trade_no FROM refunds r
    WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.state = 'REFUND' AND b.orn = r.out_refund_no)
) found
"""


def main(url: str, path: str, day: date) -> None:
    start = datetime.combine(day, time.min, tzinfo=ZoneInfo("Asia/Shanghai"))
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TEMP TABLE bill ({', '.join(f'c{n} text' for n in range(1, COLUMNS + 1))})")
        with conn.cursor().copy("COPY bill FROM STDIN (FORMAT csv, QUOTE e'\\x01')") as copy, open(path, "rb") as bill:
            bill.readline()  # the header
            for line in bill:
                if line.startswith("总交易单数".encode()):
                    break  # the summary
                copy.write(line)
        conn.execute("ANALYZE bill")
        for kind, number in conn.execute(FIND, {"start": start, "end": start + timedelta(days=1)}):
            print(kind, number)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3]))

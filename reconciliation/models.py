"""Reconciliation: each Beijing day's WeChat trade bill checked against our books.

`BillDay` is one day: its status, WeChat's totals and ours side by side, and a claim that
lets one runner at a time work on it. `BillRow` is a line of the day's verified bill (the
rows are replaced together when a verified bill is stored again). `Difference` is one
thing that differs and what was done about it; a rerun updates it rather than add another.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from operator import attrgetter

from django.db import connection, models, transaction
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone

from common.money import fee_yuan, yuan
from wxproto.beijing import BEIJING
from wxproto.bill import REFUND_FINAL, Reader, Row

# WeChat publishes a day's bill after 10:00 (Beijing) the next day.
BILL_READY_TIME = time(10, 0)


def beijing_today(now: datetime | None = None) -> date:
    return timezone.localdate(now or timezone.now(), BEIJING)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a Beijing day."""
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def bill_ready_at(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), BILL_READY_TIME, tzinfo=BEIJING)


class BillDay(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "未就绪"
        FAILED = "failed", "下载失败"
        INVALID = "invalid", "账单无效"
        BALANCED = "balanced", "已平"
        DIFFERENCES = "differences", "有差异"

    COMPLETE = (Status.BALANCED, Status.DIFFERENCES)

    date = models.DateField("账单日", unique=True)
    status = models.CharField("状态", max_length=12, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField("说明", blank=True)
    # The latest attempt's error, "" when it succeeded; a completed day keeps its result when a
    # later attempt fails, and says so here.
    last_error = models.TextField("最近一次错误", blank=True)
    api = models.CharField("接口版本", max_length=2, blank=True)
    attempts = models.PositiveIntegerField("尝试次数", default=0)
    last_attempt_at = models.DateTimeField("最近尝试", null=True, blank=True)
    fetched_at = models.DateTimeField("账单下载时间", null=True, blank=True)
    reconciled_at = models.DateTimeField("对账完成时间", null=True, blank=True)
    # A runner claims the day by moving this forward (compare-and-set); it is cleared when done,
    # and expires by itself if the runner dies.
    claimed_until = models.DateTimeField("处理中（至）", null=True, blank=True, editable=False)

    # WeChat's totals, from the verified bill's summary (None until a bill verified).
    wechat_paid_count = models.PositiveIntegerField("微信：支付笔数", null=True, blank=True)
    wechat_paid = models.BigIntegerField("微信：应结订单总金额（分）", null=True, blank=True)
    wechat_refund_count = models.PositiveIntegerField("微信：退款笔数", null=True, blank=True)
    wechat_refunded = models.BigIntegerField("微信：退款总金额（分）", null=True, blank=True)
    # WeChat writes fees to five decimals of a yuan: kept exactly, in thousandths of a fen.
    wechat_fee_millifen = models.BigIntegerField("微信：手续费总金额（0.001 分）", null=True, blank=True)
    # Refund lines not finished when WeChat cut the bill (退款状态 PROCESSING or CHANGE: a
    # bill never updates them), included in wechat_refund_count and wechat_refunded.
    wechat_in_flight_count = models.PositiveIntegerField("微信：出账时未完成的退款笔数", null=True, blank=True)
    wechat_in_flight = models.BigIntegerField("微信：出账时未完成的退款金额（分）", null=True, blank=True)
    # Ours: orders paid (paid_at), and refunds WeChat accepted (accepted_at: the bill lists a
    # refund on the day it was requested, whatever its outcome since), on that Beijing day.
    our_paid_count = models.PositiveIntegerField("本站：支付笔数", default=0)
    our_paid = models.BigIntegerField("本站：支付金额（分）", default=0)
    our_refund_count = models.PositiveIntegerField("本站：退款笔数", default=0)
    our_refunded = models.BigIntegerField("本站：退款金额（分）", default=0)

    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "每日对账"
        verbose_name_plural = "每日对账"
        ordering = ["-date"]
        permissions = [("run_billday", "可重新对账"), ("view_liability", "可查看预收资金报表")]

    def __str__(self) -> str:
        return self.date.isoformat()

    @property
    def is_complete(self) -> bool:
        return self.status in self.COMPLETE

    @property
    def wechat_count(self) -> int | None:
        """The bill's 总交易单数: its payment and refund lines (the summary's count, once verified)."""
        if self.wechat_paid_count is None or self.wechat_refund_count is None:
            return None
        return self.wechat_paid_count + self.wechat_refund_count

    @property
    def our_count(self) -> int:
        return self.our_paid_count + self.our_refund_count

    def totals(self) -> list[dict]:
        """WeChat's and our totals side by side, for people: label, both texts, and whether they differ."""

        def line(label: str, wechat, ours, show) -> dict:
            differs = wechat is not None and ours is not None and wechat != ours
            return {"label": label, "wechat": show(wechat), "ours": show(ours), "differs": differs}

        def count(n: int | None) -> str:
            return "-" if n is None else f"{n} 笔"

        lines = [
            line("总交易单数", self.wechat_count, self.our_count, count),
            line("支付笔数", self.wechat_paid_count, self.our_paid_count, count),
            line("支付金额", self.wechat_paid, self.our_paid, yuan),
            line("退款笔数", self.wechat_refund_count, self.our_refund_count, count),
            line("退款金额", self.wechat_refunded, self.our_refunded, yuan),
        ]
        if self.wechat_in_flight_count:
            lines.append(
                {
                    "label": "其中出账时未完成",
                    "wechat": self.in_flight_text(),
                    "ours": "",
                    "differs": False,
                    "note": "微信账单在退款申请成功当天列出退款，出账后不再更新其状态；这些退款出账时尚未完成，"
                    "已计入微信和本站的退款笔数与金额，不是差异",
                }
            )
        lines.append(line("手续费", self.wechat_fee_millifen, None, fee_yuan))
        return lines

    def in_flight_text(self) -> str:
        """The refunds WeChat's bill shows not yet finished when it was cut, e.g. "1 笔 ¥5.00"."""
        return f"{self.wechat_in_flight_count or 0} 笔 {yuan(self.wechat_in_flight or 0)}"

    def totals_differ(self) -> bool:
        return any(t["differs"] for t in self.totals())

    # -- transitions -------------------------------------------------------------------------
    @classmethod
    def for_date(cls, day: date) -> BillDay:
        return cls.objects.get_or_create(date=day)[0]

    _claimed_until = None  # this runner's claim, if it made one

    def claim(self, duration: timedelta) -> bool:
        """Claim the day for one runner (compare-and-set); False if another holds it."""
        now = timezone.now()
        self._claimed_until = now + duration
        claimed = (
            type(self)
            .objects.filter(pk=self.pk)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
            .update(claimed_until=self._claimed_until, attempts=models.F("attempts") + 1, last_attempt_at=now)
        )
        return claimed == 1

    def release(self) -> None:
        """Give up this runner's own claim; one that outlived it and was taken over stays with
        the runner that took it."""
        type(self).objects.filter(pk=self.pk, claimed_until=self._claimed_until).update(claimed_until=None)

    def record_failure(self, status: str, reason: str, ours: dict[str, int]) -> None:
        """No verified bill this time (pending, failed, invalid): nothing else changes. A day
        already reconciled keeps its result; the error is kept beside it. A day not reconciled
        yet shows our totals (`ours`), so that operators see what the missing bill should hold."""
        with transaction.atomic():
            day = type(self).objects.select_for_update().get(pk=self.pk)
            day.last_error = reason
            fields = ["last_error", "updated_at"]
            if not day.is_complete:
                day.status, day.reason = status, reason
                for name, value in ours.items():
                    setattr(day, name, value)
                fields += ["status", "reason", *ours]
            day.save(update_fields=fields)
        self.refresh_from_db()

    def renew(self, duration: timedelta) -> None:
        """Hold this runner's claim longer (a long day); DayTaken if it expired and another
        runner took the day meanwhile: this one must stop."""
        until = timezone.now() + duration
        if not type(self).objects.filter(pk=self.pk, claimed_until=self._claimed_until).update(claimed_until=until):
            raise DayTaken(f"{self.date.isoformat()} 的对账已由另一个进程接手")
        self._claimed_until = until

    def store_bill(self, reader: Reader, api: str, renew: Callable[[], None] = lambda: None) -> None:
        """Replace the day's rows with a bill's as `reader` verifies it, and keep WeChat's
        totals: one transaction, so a bill refused at any line (BillInvalid, raised by the
        reader) stores nothing and leaves the day's earlier rows as they were.

        The rows go to the database as they are read, never all in memory: PostgreSQL's COPY,
        batches elsewhere. A trade's second line is marked `duplicate` afterwards, in the
        database. `renew` is called every RENEW_ROWS rows (the runner's claim)."""
        held = self._claimed_until
        try:
            self._store(reader, api, renew)
        except BaseException:
            self._claimed_until = held  # renewals made in the transaction are undone with it
            raise
        if connection.vendor == "postgresql":
            # The planner's figures for the table, now that a day's worth of rows came at once:
            # without them it takes a million new rows for a few and loops over them.
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {BillRow._meta.db_table}")
        self.refresh_from_db()

    def _store(self, reader: Reader, api: str, renew: Callable[[], None]) -> None:
        with transaction.atomic():
            # Held to the end: a runner that takes over an expired claim waits here, then sees ours renewed.
            type(self).objects.select_for_update().filter(pk=self.pk).values_list("pk").first()
            if connection.vendor == "postgresql":
                # The rows are WeChat's and can be fetched again: this commit need not wait for
                # its WAL to reach the disk (the comparison's commits, which do, flush it too).
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            renew()
            self.rows.all().delete()
            rows = iter(reader)
            # A stretch of RENEW_ROWS rows at a time, the claim renewed between them (not during
            # one: the connection is busy with a COPY until it ends).
            while _write_rows(self.pk, itertools.islice(rows, RENEW_ROWS)) == RENEW_ROWS:
                renew()
            bill = reader.bill
            assert bill is not None  # the reader ended at a verified summary
            self._mark_duplicates()
            in_flight = self.rows.filter(kind=BillRow.Kind.REFUND, duplicate=False).exclude(refund_status__in=REFUND_FINAL)
            flight = in_flight.aggregate(count=Count("pk"), total=Sum("refund_amount"))
            type(self).objects.filter(pk=self.pk).update(
                api=api,
                fetched_at=timezone.now(),
                wechat_paid_count=reader.payment_count,
                wechat_paid=bill.paid,
                wechat_refund_count=reader.refund_count,
                wechat_refunded=bill.refunded,
                wechat_fee_millifen=bill.fee,
                wechat_in_flight_count=flight["count"],
                wechat_in_flight=flight["total"] or 0,
                updated_at=timezone.now(),
            )

    def _mark_duplicates(self) -> None:
        """Mark every line of a trade after its first (a payment's transaction id, a refund's
        refund id): grouped in the database; only the trades that repeat come back."""
        for kind, key in ((BillRow.Kind.PAYMENT, "transaction_id"), (BillRow.Kind.REFUND, "refund_id")):
            repeated = (
                self.rows.filter(kind=kind)
                .values(key)
                .annotate(lines=Count("pk"), first=Min("line_no"))
                .filter(lines__gt=1)
                .values_list(key, "first")
            )
            groups = iter(repeated.iterator(chunk_size=INSERT_BATCH))
            while batch := list(itertools.islice(groups, INSERT_BATCH)):
                keys, firsts = zip(*batch, strict=True)
                self.rows.filter(kind=kind, **{f"{key}__in": keys}).exclude(line_no__in=firsts).update(duplicate=True)

    def finish(self, ours: dict[str, int], reason: str = "", no_bill: bool = False) -> None:
        """The comparison is done: our totals, and the status its differences give."""
        with transaction.atomic():
            day = type(self).objects.select_for_update().get(pk=self.pk)
            now = timezone.now()
            if no_bill:  # WeChat has no bill, and we had nothing that day: zero on both sides
                day.wechat_paid_count = day.wechat_refund_count = 0
                day.wechat_paid = day.wechat_refunded = day.wechat_fee_millifen = 0
                day.wechat_in_flight_count = day.wechat_in_flight = 0
                day.fetched_at, day.api = None, ""
                day.rows.all().delete()
            for name, value in ours.items():
                setattr(day, name, value)
            day.status = self.Status.DIFFERENCES if day.differences.exists() else self.Status.BALANCED
            day.reason, day.last_error, day.reconciled_at = reason, "", now
            day.save()
        self.refresh_from_db()


class BillRow(models.Model):
    """One line of a day's verified trade bill, as WeChat wrote it (amounts in fen)."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "支付"
        REFUND = "refund", "退款"

    bill_day = models.ForeignKey(BillDay, on_delete=models.CASCADE, related_name="rows", verbose_name="账单日")
    line_no = models.PositiveIntegerField("行号")
    kind = models.CharField("类型", max_length=8, choices=Kind.choices)
    happened_at = models.DateTimeField("交易时间")
    appid = models.CharField("公众账号ID", max_length=64)
    mch_id = models.CharField("商户号", max_length=64)
    transaction_id = models.CharField("微信订单号", max_length=64)
    out_trade_no = models.CharField("商户订单号", max_length=64)
    trade_state = models.CharField("交易状态", max_length=32)
    # How the trade was paid, as the bill says (JSAPI, NATIVE, MWEB …; blank where it says nothing).
    trade_type = models.CharField("交易类型", max_length=16, blank=True, default="")
    amount = models.BigIntegerField("应结订单金额（分）")
    refund_id = models.CharField("微信退款单号", max_length=64, blank=True)
    out_refund_no = models.CharField("商户退款单号", max_length=64, blank=True)
    refund_amount = models.BigIntegerField("退款金额（分）")
    refund_status = models.CharField("退款状态", max_length=32, blank=True)
    fee_millifen = models.BigIntegerField("手续费（0.001 分）")
    # A second line for a trade already in the bill: kept as published, left out of the comparison.
    duplicate = models.BooleanField("重复行", default=False)
    raw = models.TextField("原文")

    class Meta:
        verbose_name = "账单明细"
        verbose_name_plural = "账单明细"
        ordering = ["bill_day", "line_no"]
        indexes = [
            models.Index(fields=["bill_day", "line_no"], name="billrow_day_line_idx"),
            models.Index(fields=["out_trade_no"], name="billrow_out_trade_no_idx"),
            models.Index(fields=["out_refund_no"], name="billrow_out_refund_no_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.bill_day} #{self.line_no}"


class Difference(models.Model):
    """One way the day's bill and our books differ, and what reconciliation did about it."""

    class Kind(models.TextChoices):
        MISSED_PAYMENT = "missed_payment", "支付未入账"
        UNKNOWN_ORDER = "unknown_order", "未知订单"
        MISSING_PAYMENT = "missing_payment", "微信无此支付"
        AMOUNT = "amount", "金额不符"
        MERCHANT = "merchant", "商户号或appid不符"
        TRANSACTION = "transaction", "微信订单号不符"
        UNSETTLED_REFUND = "unsettled_refund", "退款未结"
        UNKNOWN_REFUND = "unknown_refund", "未知退款"
        MISSING_REFUND = "missing_refund", "微信无此退款"
        REFUND_AMOUNT = "refund_amount", "退款金额不符"
        REFUND_STATE = "refund_state", "退款状态不符"
        DUPLICATE = "duplicate", "账单重复行"
        OTHER_DAY = "other_day", "账期不同"

    class Outcome(models.TextChoices):
        SETTLED = "settled", "已自动补账"
        INCIDENT = "incident", "已提交异常"
        INFO = "info", "仅提示"

    bill_day = models.ForeignKey(BillDay, on_delete=models.CASCADE, related_name="differences", verbose_name="账单日")
    kind = models.CharField("差异类型", max_length=20, choices=Kind.choices)
    outcome = models.CharField("处理结果", max_length=10, choices=Outcome.choices)
    order = models.ForeignKey(
        "orders.RechargeOrder",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bill_differences",
        verbose_name="订单",
    )
    refund = models.ForeignKey(
        "orders.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="bill_differences", verbose_name="退款"
    )
    incident = models.ForeignKey(
        "payments.Incident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bill_differences",
        verbose_name="异常",
    )
    out_trade_no = models.CharField("商户订单号", max_length=64, blank=True)
    out_refund_no = models.CharField("商户退款单号", max_length=64, blank=True)
    transaction_id = models.CharField("微信订单号", max_length=64, blank=True)
    wechat_amount = models.BigIntegerField("微信金额（分）", null=True, blank=True)
    our_amount = models.BigIntegerField("本站金额（分）", null=True, blank=True)
    detail = models.TextField("说明")
    created_at = models.DateTimeField("发现时间", default=timezone.now)
    updated_at = models.DateTimeField("更新时间", auto_now=True)

    class Meta:
        verbose_name = "对账差异"
        verbose_name_plural = "对账差异"
        ordering = ["bill_day", "kind", "out_trade_no", "out_refund_no"]
        constraints = [
            # A rerun of the day updates its differences instead of adding copies.
            models.UniqueConstraint(
                fields=["bill_day", "kind", "out_trade_no", "out_refund_no"], name="difference_one_per_day_kind_trade"
            ),
        ]
        indexes = [models.Index(fields=["out_trade_no"], name="difference_out_trade_no_idx")]

    def __str__(self) -> str:
        return f"{self.bill_day} {self.get_kind_display()} {self.out_trade_no}".strip()


# -- storing a bill's rows ------------------------------------------------------------------

INSERT_BATCH = 2000
# A runner renews its claim on the day this often while it stores rows.
RENEW_ROWS = 100_000
# BillRow's fields, each as the bill reader's Row names it: one list for COPY, INSERT and back.
_FIELDS = {
    name: name
    for name in (
        "line_no",
        "kind",
        "happened_at",
        "appid",
        "mch_id",
        "transaction_id",
        "out_trade_no",
        "trade_state",
        "trade_type",
        "amount",
        "refund_id",
        "out_refund_no",
        "refund_amount",
        "refund_status",
        "raw",
    )
} | {"fee_millifen": "fee"}
_of_row = attrgetter(*_FIELDS.values())


class DayTaken(Exception):
    """This runner's claim on a day expired and another runner has it now."""


def _write_rows(bill_day_id: int, rows: Iterable[Row]) -> int:
    """Store `rows` as they come: PostgreSQL's COPY FROM STDIN through psycopg, batched
    INSERTs elsewhere. Returns how many."""
    if connection.vendor == "postgresql":
        return _copy_rows(bill_day_id, rows)
    count = 0
    rows = iter(rows)
    while batch := list(itertools.islice(rows, INSERT_BATCH)):
        BillRow.objects.bulk_create([_bill_row(bill_day_id, r) for r in batch])
        count += len(batch)
    return count


def _copy_rows(bill_day_id: int, rows: Iterable[Row]) -> int:
    count = 0
    columns = ", ".join(BillRow._meta.get_field(name).column for name in ("bill_day", "duplicate", *_FIELDS))
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {BillRow._meta.db_table} ({columns}) FROM STDIN") as copy:
            for r in rows:
                count += 1
                copy.write_row((bill_day_id, False, *_of_row(r)))
    return count


def _bill_row(bill_day_id: int, r: Row) -> BillRow:
    return BillRow(bill_day_id=bill_day_id, **dict(zip(_FIELDS, _of_row(r), strict=True)))


def row_of(bill_row: BillRow) -> Row:
    """A stored line as the bill reader gave it (for the few lines that differ)."""
    return Row(**{attr: getattr(bill_row, field) for field, attr in _FIELDS.items()})

"""Spending the balance (docs/wallet.md): member pay codes, charges and their reversals, the
merchant's API clients and the idempotency keys of their requests. Money is integer fen.

A charge is a ledger row (LedgerEntry.Kind.SPEND) and a reversal another (SPEND_REVERSAL),
each posted by a locked verb in one transaction with the balance change and the record that
points at it. Lock order (docs/architecture.md#lock-order): member code, then charge, then
user; the database backs every "exactly once" (a code is used by one charge at most, a
reversal's request number once, an idempotency key once per client).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import cast

from django.conf import settings
from django.db import IntegrityError, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from common.housekeeping import purge_task
from common.money import format_fen
from common.numbering import random_digits, stamped_number
from common.statements import Statement
from orders.models import Consume, GiveBack, InsufficientBalance, LedgerEntry
from outbox.models import emit


class ChargeError(Exception):
    """A charge or reversal that must not happen: `code` for the API, `message` for people."""

    def __init__(self, code: str, message: str, **details):
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiClient(models.Model):
    """One of the merchant's servers (a POS, a game server): it calls /api/v1/ with its secret key.

    The key is shown once, when it is made or rolled; only its SHA-256 is kept (a random
    256-bit key needs no slow hash), with a prefix to tell keys apart in lists.
    """

    SCOPES = {
        "charges:write": "创建消费、撤销消费（凭会员码）",
        "charges:by_member_id": "凭会员编号直接扣款（无需会员码）",
        "charges:read": "查询消费",
        "members:read": "查询会员余额",
    }
    KEY_PREFIX = "sk_"

    name = models.CharField("名称", max_length=64)
    scopes = models.JSONField("权限", default=list)
    store = models.CharField("门店", max_length=64, blank=True, help_text="填写后，该客户端的消费都记在这个门店名下")
    key_prefix = models.CharField("密钥前缀", max_length=16, editable=False)
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField("创建时间", default=timezone.now, editable=False)
    rolled_at = models.DateTimeField("密钥更换时间", null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField("停用时间", null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField("最近调用", null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API 客户端"
        verbose_name_plural = "API 客户端"
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def _new_key(self) -> str:
        secret = self.KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_prefix, self.key_digest = secret[:10], _digest(secret)
        return secret

    @classmethod
    def issue(cls, name: str, scopes: list[str], store: str = "") -> tuple[ApiClient, str]:
        """A new client and its secret key (shown to the operator once, never stored)."""
        unknown = set(scopes) - set(cls.SCOPES)
        if unknown or not scopes:
            raise ValueError(f"未知的权限：{', '.join(sorted(unknown))}" if unknown else "请至少选择一项权限")
        if not name.strip():
            raise ValueError("请填写名称")
        client = cls(name=name.strip()[:64], scopes=sorted(set(scopes)), store=store.strip()[:64])
        secret = client._new_key()
        client.save()
        return client, secret

    def roll(self) -> str:
        """A new secret key; the old one stops working at once."""
        secret = self._new_key()
        self.rolled_at = timezone.now()
        self.save(update_fields=["key_prefix", "key_digest", "rolled_at"])
        return secret

    def revoke(self) -> bool:
        """Stop the client; False if it already was."""
        done = type(self).objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.refresh_from_db(fields=["revoked_at"])
        return bool(done)

    @classmethod
    def authenticate(cls, secret: str) -> ApiClient | None:
        """The active client whose key this is, or None."""
        if not secret.startswith(cls.KEY_PREFIX) or len(secret) > 100:
            return None
        row = _CLIENT_BY_DIGEST.one(key_digest=_digest(secret))
        return cls.from_db(router.db_for_read(cls), _CLIENT_FIELDS, row) if row else None


class MemberCode(models.Model):
    """A one-time member pay code (会员码): random digits, bound to one user, valid for
    VALID_FOR, used by one charge at most. The page shows a new one every RENEW_EVERY."""

    VALID_FOR = timedelta(seconds=90)
    RENEW_EVERY = timedelta(seconds=60)
    # 18 digits, like WeChat's own 付款码 (which begin 10-15): ours begin 88, so a counter
    # that reads both can tell them apart.
    PREFIX = "88"
    LENGTH = 18

    code = models.CharField("会员码", max_length=32, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member_codes")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "会员码"
        verbose_name_plural = "会员码"
        indexes = [models.Index(fields=["user", "-created_at"], name="membercode_user_created_idx")]

    def __str__(self) -> str:
        return f"{self.code[:4]}…{self.code[-4:]}"

    @classmethod
    def current(cls, user) -> MemberCode:
        """The code the user's page shows now: the latest while it has more than the renewal
        margin left and is unused, else a new one."""
        now = timezone.now()
        latest = cls.objects.filter(user=user, used_at__isnull=True).order_by("-created_at", "-pk").first()
        if latest is not None and latest.created_at + cls.RENEW_EVERY > now and latest.expires_at > now:
            return latest
        for _ in range(5):
            code = cls.PREFIX + random_digits(cls.LENGTH - len(cls.PREFIX))
            try:
                with transaction.atomic():
                    return cls.objects.create(code=code, user=user, created_at=now, expires_at=now + cls.VALID_FOR)
            except IntegrityError:
                continue  # the same 16 random digits again: draw another
        raise RuntimeError("could not draw a unique member code")

    @property
    def seconds_left(self) -> int:
        return max(0, int((self.expires_at - timezone.now()).total_seconds()))

    @classmethod
    def claim(cls, code: str) -> MemberCode:
        """Lock the code and mark it used, in the caller's transaction; ChargeError
        `member_code_invalid` when it is unknown, used or expired (one answer for all three)."""
        row = _LOCK_CODE.one(code=code) if isinstance(code, str) and len(code) <= 32 else None
        now = timezone.now()
        if row is None or row[2] is not None or row[3] <= now:
            raise ChargeError("member_code_invalid", "会员码无效或已过期，请让顾客刷新会员码")
        _USE_CODE.run(pk=row[0], used_at=now)
        return cls.from_db(router.db_for_write(cls), ["id", "user_id", "used_at", "expires_at"], (row[0], row[1], now, row[3]))


class Charge(models.Model):
    """A spend of a member's balance at the merchant's counter or service."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "已扣款"
        PARTIALLY_REVERSED = "partially_reversed", "部分撤销"
        REVERSED = "reversed", "已撤销"

    # The largest amount one charge may take: ¥50,000 (a registered stored-value card holds
    # at most ¥5,000; this only keeps absurd input out).
    MAX_AMOUNT = 5_000_000

    number = models.CharField("消费单号", max_length=32, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="charges", verbose_name="会员")
    amount = models.PositiveBigIntegerField("金额（分）")
    reversed_amount = models.PositiveBigIntegerField("已撤销（分）", default=0)
    description = models.CharField("说明", max_length=200, blank=True)
    store = models.CharField("门店", max_length=64, blank=True)
    client = models.ForeignKey(
        ApiClient, on_delete=models.PROTECT, null=True, blank=True, related_name="charges", verbose_name="API 客户端"
    )
    member_code = models.OneToOneField(
        MemberCode, on_delete=models.PROTECT, null=True, blank=True, related_name="charge", verbose_name="会员码"
    )
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="charge", editable=False)
    created_at = models.DateTimeField("时间", default=timezone.now, editable=False)

    class Meta:
        verbose_name = "消费"
        verbose_name_plural = "消费"
        ordering = ["-created_at", "-pk"]
        permissions = [("reverse_charge", "可以撤销消费（退回会员余额）")]
        indexes = [
            models.Index(fields=["user", "-id"], name="charge_user_id_idx"),
            models.Index(fields=["client", "-id"], name="charge_client_id_idx"),
            models.Index(fields=["-created_at", "-id"], name="charge_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="charge_amount_positive"),
            models.CheckConstraint(condition=Q(reversed_amount__lte=F("amount")), name="charge_reversed_within_amount"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def status(self) -> str:
        if self.reversed_amount == 0:
            return self.Status.SUCCEEDED
        return self.Status.REVERSED if self.reversed_amount >= self.amount else self.Status.PARTIALLY_REVERSED

    def get_status_display(self) -> str:
        return self.Status(self.status).label

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)

    @property
    def reversible_amount(self) -> int:
        return self.amount - self.reversed_amount

    @staticmethod
    def check_amount(amount, what: str = "消费") -> int:
        """A positive integer number of fen up to MAX_AMOUNT, or ChargeError `invalid_amount`."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0 or amount > Charge.MAX_AMOUNT:
            raise ChargeError(
                "invalid_amount", f"{what}金额须为 1 至 {Charge.MAX_AMOUNT} 之间的整数（单位：分）", max=Charge.MAX_AMOUNT
            )
        return amount

    @classmethod
    def create(
        cls,
        *,
        amount: int,
        member_code: str | None = None,
        user_id: int | None = None,
        description: str = "",
        store: str = "",
        client: ApiClient | None = None,
    ) -> Charge:
        """Spend `amount` fen of a member's balance: by a member code (used up with it) or, for
        a client allowed to, by the member's id. One transaction: the code, the ledger row (under
        the user's lock) and the charge. Raises ChargeError: invalid_amount, member_code_invalid,
        member_not_found, insufficient_balance (nothing used or moved)."""
        cls.check_amount(amount)
        with transaction.atomic():
            code = None
            if member_code is not None:
                code = MemberCode.claim(member_code)
                user_id = code.user_id
            active = _MEMBER_ACTIVE.one(id=user_id) if user_id is not None else None
            if user_id is None or not (active and active[0]):
                if code is not None:  # a code says nothing of its member: one answer for every bad code
                    raise ChargeError("member_code_invalid", "会员码无效或已过期，请让顾客刷新会员码")
                raise ChargeError("member_not_found", "会员不存在或已停用")
            try:
                entry = LedgerEntry.post(user_id, -amount, LedgerEntry.Kind.SPEND, reason=description[:200], lots=Consume())
            except InsufficientBalance as exc:
                raise ChargeError(
                    "insufficient_balance",
                    f"余额不足：余额 ¥{format_fen(exc.balance)}，本次消费 ¥{format_fen(amount)}",
                    balance=exc.balance,
                ) from None
            charge = cls(
                number=stamped_number("CH", 10),
                user_id=user_id,
                amount=amount,
                description=description[:200],
                store=store[:64],
                client=client,
                member_code=code,
                entry=entry,
                created_at=entry.created_at,
            )
            charge.pk = _INSERT_CHARGE.run(**{name: getattr(charge, attname) for name, attname in _CHARGE_COLUMNS})
            charge._state.adding, charge._state.db = False, router.db_for_write(cls)
            emit(
                "charge.succeeded",
                {
                    "charge": charge.number,
                    "member_id": user_id,
                    "amount": amount,
                    "store": charge.store,
                    "description": charge.description,
                    "balance": entry.balance_after,
                },
            )
        return charge

    def reverse(
        self, amount: int, reason: str, *, client: ApiClient | None = None, operator=None, request_no: str | None = None
    ) -> Reversal:
        """Give back `amount` fen of this charge to the member, at most what is left to reverse.
        Under the charge's lock, then the user's; a form's `request_no` is one reversal however
        often it is sent. Raises ChargeError: invalid_amount, reversal_exceeds_charge,
        duplicate_request."""
        Charge.check_amount(amount, "撤销")
        with transaction.atomic():
            charge = type(self).objects.select_for_update().get(pk=self.pk)
            if request_no and Reversal.objects.filter(request_no=request_no).exists():
                raise ChargeError("duplicate_request", "该撤销已提交，请勿重复提交")
            if amount > charge.reversible_amount:
                raise ChargeError(
                    "reversal_exceeds_charge",
                    f"撤销金额超过可撤销金额：可撤销 ¥{format_fen(charge.reversible_amount)}",
                    reversible=charge.reversible_amount,
                )
            # Back to the lots the spend took from, less what earlier reversals gave back.
            earlier = list(charge.reversals.values_list("entry_id", flat=True))
            entry = LedgerEntry.post(
                charge.user_id,
                amount,
                LedgerEntry.Kind.SPEND_REVERSAL,
                operator=operator,
                reason=reason.strip()[:200],
                lots=GiveBack(charge.entry_id, earlier),
            )
            charge.reversed_amount += amount
            charge.save(update_fields=["reversed_amount"])
            reversal = Reversal.objects.create(
                number=stamped_number("RV", 10),
                charge=charge,
                amount=amount,
                reason=reason.strip()[:200],
                client=client,
                operator=operator,
                request_no=request_no or None,
                entry=entry,
                created_at=entry.created_at,
            )
            emit(
                "charge.reversed",
                {
                    "charge": charge.number,
                    "reversal": reversal.number,
                    "member_id": charge.user_id,
                    "amount": amount,
                    "amount_reversed": charge.reversed_amount,
                    "store": charge.store,
                    "reason": reversal.reason,
                    "balance": entry.balance_after,
                },
            )
        self.reversed_amount = charge.reversed_amount
        return reversal


class Reversal(models.Model):
    """Money of a charge given back to the member (all of it, or part)."""

    number = models.CharField("撤销单号", max_length=32, unique=True, editable=False)
    charge = models.ForeignKey(Charge, on_delete=models.PROTECT, related_name="reversals", verbose_name="消费")
    amount = models.PositiveBigIntegerField("金额（分）")
    reason = models.CharField("原因", max_length=200, blank=True)
    client = models.ForeignKey(
        ApiClient, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="API 客户端"
    )
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="操作人"
    )
    request_no = models.CharField(max_length=40, unique=True, null=True, blank=True, editable=False)
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="reversal", editable=False)
    created_at = models.DateTimeField("时间", default=timezone.now, editable=False)

    class Meta:
        verbose_name = "消费撤销"
        verbose_name_plural = "消费撤销"
        ordering = ["-created_at", "-pk"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="reversal_amount_positive")]

    def __str__(self) -> str:
        return self.number

    @property
    def amount_yuan(self) -> str:
        return format_fen(self.amount)


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` of one client: claimed when its first request starts, and
    finished with that request's answer in the same transaction as the money it moved."""

    KEEP_FOR = timedelta(hours=24)
    # A claim this old belongs to a request that died before it finished: it may be taken over
    # (no request runs this long: gunicorn's timeout ends it first).
    STALE_AFTER = timedelta(minutes=10)

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # The answer's body exactly as it was sent (a replay sends the same bytes).
    answer = models.TextField(blank=True)

    class Meta:
        verbose_name = "幂等键"
        verbose_name_plural = "幂等键"
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_one_per_client_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return self.key


class ApiRequest(models.Model):
    """Every call to /api/v1/ with the client that made it (none when its key was refused)."""

    client = models.ForeignKey(
        ApiClient, on_delete=models.SET_NULL, null=True, blank=True, related_name="requests", verbose_name="API 客户端"
    )
    method = models.CharField("方法", max_length=8)
    path = models.CharField("路径", max_length=200)
    status_code = models.PositiveSmallIntegerField("状态码")
    error_code = models.CharField("错误", max_length=40, blank=True)
    idempotency_key = models.CharField("幂等键", max_length=255, blank=True)
    replayed = models.BooleanField("重放", default=False)
    remote_addr = models.GenericIPAddressField("来源地址", null=True, blank=True)
    created_at = models.DateTimeField("时间", default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "API 调用记录"
        verbose_name_plural = "API 调用记录"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status_code}"


# The charge path's statements, compiled once (common/statements.py): every sale comes here.
_CLIENT_FIELDS = ["id", "name", "scopes", "store", "key_prefix", "created_at", "revoked_at", "last_used_at"]
_CLIENT_BY_DIGEST = Statement.select(
    ApiClient,
    lambda p: ApiClient.objects.filter(key_digest=p("key_digest"), revoked_at__isnull=True).values_list(*_CLIENT_FIELDS),
)
_LOCK_CODE = Statement.select(
    MemberCode,
    lambda p: MemberCode.objects.select_for_update().filter(code=p("code")).values_list("id", "user_id", "used_at", "expires_at"),
)
_USE_CODE = Statement.update_by_pk(MemberCode, ["used_at"])
_MEMBER_ACTIVE = Statement.select(User, lambda p: User.objects.filter(pk=p("id")).values_list("is_active"))
_CHARGE_FIELDS = [
    "number",
    "user",
    "amount",
    "reversed_amount",
    "description",
    "store",
    "client",
    "member_code",
    "entry",
    "created_at",
]
_INSERT_CHARGE = Statement.insert(Charge, _CHARGE_FIELDS)
# (field name, the instance attribute holding its value: user_id for user …)
_CHARGE_COLUMNS = [(name, cast(models.Field, Charge._meta.get_field(name)).attname) for name in _CHARGE_FIELDS]


@purge_task("wallet records")
def purge_records() -> int:
    """Member codes never used and expired a day ago; idempotency keys past their 24 hours (and
    a claim that never finished); API call records older than API_LOG_RETENTION_DAYS."""
    now = timezone.now()
    codes, _ = MemberCode.objects.filter(used_at__isnull=True, expires_at__lt=now - timedelta(days=1)).delete()
    keys, _ = IdempotencyKey.objects.filter(created_at__lt=now - IdempotencyKey.KEEP_FOR - timedelta(hours=1)).delete()
    calls, _ = ApiRequest.objects.filter(created_at__lt=now - timedelta(days=settings.API_LOG_RETENTION_DAYS)).delete()
    return codes + keys + calls

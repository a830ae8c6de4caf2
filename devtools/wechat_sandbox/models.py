"""The sandbox's own records: what WeChat would hold on its side. Never the merchant's."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from devtools.wechat_sandbox.v3sign import PROBE_PREFIX

V2, V3 = "v2", "v3"
API_VERSIONS = [(V2, "API v2（XML）"), (V3, "API v3（JSON）")]


def api_version_field() -> models.CharField:
    return models.CharField(
        "API 版本", max_length=2, choices=API_VERSIONS, default=V2, help_text="由哪个版本的接口创建；决定通知的格式"
    )


class Trade(models.Model):
    """An order as WeChat Pay knows it (统一下单 onwards)."""

    NOTPAY, SUCCESS, REFUND, CLOSED = "NOTPAY", "SUCCESS", "REFUND", "CLOSED"
    # trade_type, as WeChat names it in answers, notifies and bills (H5 is MWEB in v2 and v3 alike)
    JSAPI, NATIVE, MWEB = "JSAPI", "NATIVE", "MWEB"
    USERPAYING, PAYERROR, REVOKED = "USERPAYING", "PAYERROR", "REVOKED"
    # The value is WeChat's trade_state code; the label is what a person reads beside it.
    STATES = [
        (NOTPAY, "未支付"),
        (SUCCESS, "支付成功"),
        (REFUND, "转入退款"),
        (CLOSED, "已关闭"),
        (USERPAYING, "用户支付中"),
        (PAYERROR, "支付失败"),
        (REVOKED, "已撤销"),
    ]

    mch_id = models.CharField("商户号", max_length=32)
    appid = models.CharField("应用 appid", max_length=32)
    out_trade_no = models.CharField("商户订单号", max_length=32)
    params_digest = models.CharField("参数摘要", max_length=64, help_text="参数相同的重复下单得到同一个 prepay_id")
    body = models.CharField("商品描述", max_length=128)
    attach = models.CharField("附加数据", max_length=127, blank=True)
    total_fee = models.PositiveBigIntegerField("订单金额（分）")
    trade_type = models.CharField("交易类型", max_length=16)
    openid = models.CharField("用户 openid", max_length=128, blank=True)
    notify_url = models.CharField("通知地址", max_length=256)
    sign_type = models.CharField("签名类型", max_length=16, default="MD5")
    time_expire = models.DateTimeField("交易结束时间", null=True, blank=True)
    prepay_id = models.CharField("预支付会话标识 prepay_id", max_length=64, unique=True)
    prepay_expires_at = models.DateTimeField("预支付会话失效时间")
    state = models.CharField("交易状态", max_length=16, choices=STATES, default=NOTPAY)
    transaction_id = models.CharField("微信支付订单号", max_length=32, unique=True, null=True, blank=True)
    time_end = models.DateTimeField("支付完成时间", null=True, blank=True)
    refunded_fee = models.PositiveBigIntegerField("已退款金额（分）", default=0)
    api_version = api_version_field()
    scene_info = models.JSONField(
        "场景信息",
        default=dict,
        blank=True,
        help_text="H5 支付下单时的 scene_info（v2 的 h5_info，v3 的 payer_client_ip 与 h5_info）",
    )
    pay_token = models.CharField(
        "支付链接标识",
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="Native 的 code_url（pr=…）或 H5 的 h5_url（package=…）中的标识；每次下单换新，旧链接随之失效",
    )
    pay_token_expires_at = models.DateTimeField(
        "支付链接失效时间", null=True, blank=True, help_text="code_url 2 小时，h5_url 5 分钟"
    )
    created_at = models.DateTimeField("下单时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱交易"
        verbose_name_plural = "沙箱交易"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["mch_id", "out_trade_no"], name="sandbox_trade_unique_out_trade_no")]

    def __str__(self) -> str:
        return f"{self.out_trade_no} {self.state}"

    @property
    def is_paid(self) -> bool:
        return self.state in (self.SUCCESS, self.REFUND)


class Refund(models.Model):
    """A refund as WeChat Pay knows it: accepted as PROCESSING, settled a little later."""

    PROCESSING, SUCCESS, REFUNDCLOSE, CHANGE = "PROCESSING", "SUCCESS", "REFUNDCLOSE", "CHANGE"
    # WeChat's refund_status code and a label beside it.
    STATES = [(PROCESSING, "退款处理中"), (SUCCESS, "退款成功"), (REFUNDCLOSE, "退款关闭"), (CHANGE, "退款异常")]
    # API v3 names the same states otherwise.
    V3_STATUS = {PROCESSING: "PROCESSING", SUCCESS: "SUCCESS", REFUNDCLOSE: "CLOSED", CHANGE: "ABNORMAL"}

    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="refunds", verbose_name="交易")
    out_refund_no = models.CharField("商户退款单号", max_length=64)
    refund_id = models.CharField("微信退款单号", max_length=32, unique=True)
    refund_fee = models.PositiveBigIntegerField("退款金额（分）")
    notify_url = models.CharField("通知地址", max_length=256, blank=True)
    reason = models.CharField("退款原因", max_length=80, blank=True)
    state = models.CharField("退款状态", max_length=16, choices=STATES, default=PROCESSING)
    success_time = models.DateTimeField("退款成功时间", null=True, blank=True)
    settle_at = models.DateTimeField(
        "结算时间",
        null=True,
        blank=True,
        db_index=True,
        help_text="退款处理中的退款在这时由投递线程（或一次 refundquery）结算",
    )
    api_version = api_version_field()
    created_at = models.DateTimeField("申请时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱退款"
        verbose_name_plural = "沙箱退款"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["trade", "out_refund_no"], name="sandbox_refund_unique_out_refund_no")]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.state}"

    def is_due(self, now: datetime | None = None) -> bool:
        """Still PROCESSING and past its settle time: whoever sees it first settles it."""
        return self.state == self.PROCESSING and self.settle_at is not None and self.settle_at <= (now or timezone.now())

    @property
    def v3_status(self) -> str:
        return self.V3_STATUS[self.state]


class AuthCode(models.Model):
    """A 网页授权 code or a wx.login code: single use, 5 minutes."""

    OAUTH, JSCODE = "oauth", "jscode"

    code = models.CharField("code", max_length=64, unique=True)
    kind = models.CharField("类型", max_length=8, choices=[(OAUTH, "网页授权"), (JSCODE, "wx.login")])
    appid = models.CharField("应用 appid", max_length=32)
    openid = models.CharField("用户 openid", max_length=128)
    scope = models.CharField("授权范围", max_length=32, blank=True)
    expires_at = models.DateTimeField("过期时间")
    used_at = models.DateTimeField("使用时间", null=True, blank=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱授权码"
        verbose_name_plural = "沙箱授权码"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.code[:8]}…"


class Delivery(models.Model):
    """One notify to deliver (payment or refund), retried on WeChat's schedule."""

    PAYMENT, REFUND = "payment", "refund"
    PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"

    kind = models.CharField("类型", max_length=8, choices=[(PAYMENT, "支付通知"), (REFUND, "退款通知")])
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="deliveries", verbose_name="交易")
    refund = models.ForeignKey(
        Refund, on_delete=models.CASCADE, null=True, blank=True, related_name="deliveries", verbose_name="退款"
    )
    url = models.CharField("通知地址", max_length=256)
    body = models.TextField("通知内容", help_text="v2 为 XML；v3 为 JSON，每次尝试原样发送这些字节")
    api_version = api_version_field()
    headers = models.JSONField(
        "请求头",
        default=dict,
        blank=True,
        help_text="v3：最近一次发送的 Wechatpay-* 请求头（每次尝试重新签名：新的时间戳、随机串和签名）",
    )
    state = models.CharField(
        "投递状态",
        max_length=10,
        choices=[(PENDING, "待送达"), (DELIVERED, "已送达"), (GAVE_UP, "已放弃")],
        default=PENDING,
    )
    attempts = models.PositiveIntegerField("已尝试次数", default=0)
    duplicate = models.BooleanField("每次发送两遍", default=False, help_text="故障开关：每次尝试发送两遍")
    next_attempt_at = models.DateTimeField("下次尝试时间", db_index=True)
    created_at = models.DateTimeField("创建时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱通知"
        verbose_name_plural = "沙箱通知"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.trade.out_trade_no} {self.state}"


class Attempt(models.Model):
    # "success" and "fail" are the v2 words; a v3 delivery shows them as V3_LABELS say
    # (for v3 the HTTP status decides: any 2xx is received, anything else is retried).
    OUTCOMES = [
        ("success", "商户答 SUCCESS"),
        ("fail", "商户未答 SUCCESS"),
        ("error", "无法连接"),
        ("dropped", "已丢弃（故障开关）"),
        ("duplicate", "重复发送（故障开关）"),
        ("probe_accepted", "商户接受了签名探测（应拒收）"),
    ]
    V3_LABELS = {"success": "商户已接收（HTTP 2xx）", "fail": "商户拒收（HTTP 非 2xx，将重试）"}

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log", verbose_name="通知")
    at = models.DateTimeField("时间", default=timezone.now)
    status_code = models.PositiveIntegerField("HTTP 状态码", null=True, blank=True)
    answer = models.TextField("商户应答", blank=True)
    outcome = models.CharField("结果", max_length=16, choices=OUTCOMES)
    headers = models.JSONField("发送的请求头", default=dict, blank=True, help_text="v3：这次尝试发送的 Wechatpay-* 请求头")

    class Meta:
        verbose_name = "沙箱通知尝试"
        verbose_name_plural = "沙箱通知尝试"
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.outcome}"

    @property
    def label(self) -> str:
        """The outcome in words, in the terms of the delivery's API version."""
        if self.delivery.api_version == V3 and self.outcome in self.V3_LABELS:
            return self.V3_LABELS[self.outcome]
        return self.get_outcome_display()

    @property
    def is_probe(self) -> bool:
        return str(self.headers.get("Wechatpay-Signature", "")).startswith(PROBE_PREFIX)


class Fault(models.Model):
    """Fault switches: a row with an empty out_trade_no is global; a row for an
    out_trade_no (settable before the trade exists) wins over the global row.

    token_busy concerns an app's access_token, not a trade: the next N calls to stable_token or
    token answer errcode -1 (system error). Global row only (GLOBAL_ONLY), as are the switches of
    messages (the next N sends answer message_fail_errcode), shipping uploads (likewise) and the
    alert robot (robot_down: HTTP 500).

    The bill_* switches change the trade bills (devtools/wechat_sandbox/bills.py): bill_omit,
    bill_total_fee and bill_duplicate_row apply to a trade like the others;
    bill_add_unknown_trade, bill_corrupt_summary and bill_not_ready concern whole bills
    and are read from the global row only (GLOBAL_ONLY; clean() refuses them elsewhere).

    h5_no_auth plays a merchant without the H5 pay product: H5 ordering answers WeChat's
    "no permission" (v2 result_code=FAIL err_code=NOAUTH 商户无此接口权限; v3 403 NO_AUTH),
    so that a fallback to Native can be tried. Per trade or global, like the others.
    """

    END_STATES = [
        ("", "正常"),
        ("PAYERROR", "支付失败 PAYERROR"),
        ("USERPAYING", "用户支付中 USERPAYING"),
        ("REFUNDCLOSE", "退款关闭 REFUNDCLOSE"),
        ("CHANGE", "退款异常 CHANGE"),
    ]
    V3_PROBE, V3_CERTIFICATE, V3_PUBLIC_KEY, V3_STALE, V3_BAD_TAG = "probe", "certificate", "public_key", "stale", "bad_tag"
    V3_NOTIFY_SIGNATURES = [
        ("", "正常"),
        (V3_PROBE, "签名探测：首次发送的签名以 WECHATPAY/SIGNTEST/ 开头且验不过，之后正常重发"),
        (V3_CERTIFICATE, "用平台证书签名（迁移期的回调）"),
        (V3_PUBLIC_KEY, "用微信支付公钥签名（即使是平台证书模式）"),
        (V3_STALE, "Wechatpay-Timestamp 为 6 分钟前"),
        (V3_BAD_TAG, "密文的 GCM 认证标签被篡改"),
    ]

    out_trade_no = models.CharField("商户订单号", max_length=32, unique=True, blank=True, help_text="留空为全局")
    drop_notifies = models.PositiveIntegerField("丢弃接下来 N 次通知", default=0)
    duplicate_notifies = models.BooleanField("每次通知发送两遍", default=False)
    notify_delay_seconds = models.PositiveIntegerField("通知延迟（秒）", default=0)
    corrupt_signature = models.BooleanField(
        "签名错误",
        default=False,
        help_text="通知和关于这笔交易的每个商户接口应答（下单、查询、关单、退款、退款查询）都带错的签名",
    )
    report_total_fee = models.PositiveBigIntegerField("通知与查询报告的 total_fee（分）", null=True, blank=True)
    systemerror_endpoints = models.CharField(
        "返回 SYSTEMERROR 的接口",
        max_length=200,
        blank=True,
        help_text="逗号分隔，如 unifiedorder,orderquery；v3 的对应接口同样答 500 SYSTEM_ERROR",
    )
    end_state = models.CharField("交易/退款结果", max_length=16, choices=END_STATES, blank=True)
    v3_notify_signature = models.CharField("通知签名（v3）", max_length=16, choices=V3_NOTIFY_SIGNATURES, blank=True, default="")
    h5_no_auth = models.BooleanField(
        "H5 支付未开通",
        default=False,
        help_text="H5 下单答无权限：v2 为 result_code=FAIL、err_code=NOAUTH（商户无此接口权限），v3 为 403 NO_AUTH",
    )
    token_busy = models.PositiveIntegerField(
        "获取 access_token 答系统繁忙（次，仅全局）",
        default=0,
        help_text="接下来 N 次 stable_token 或 token 调用答 errcode -1（system error），每次减一",
    )
    # Messages, shipping and the alert robot (messages.py, shipping.py, robot.py): global row only.
    message_fail_errcode = models.IntegerField(
        "消息发送答错误码（仅全局）",
        null=True,
        blank=True,
        help_text="模板消息与订阅消息的发送（template/send、subscribe/send）答这个 errcode（留空为 -1），如 40001",
    )
    message_fail_times = models.PositiveIntegerField(
        "消息发送出错（次，仅全局）", default=0, help_text="接下来 N 次发送，每次减一"
    )
    shipping_fail_errcode = models.IntegerField(
        "发货录入答错误码（仅全局）",
        null=True,
        blank=True,
        help_text="upload_shipping_info 答这个 errcode（留空为 -1），如 10060012",
    )
    shipping_fail_times = models.PositiveIntegerField(
        "发货录入出错（次，仅全局）", default=0, help_text="接下来 N 次录入，每次减一"
    )
    robot_down = models.BooleanField("告警机器人宕机（仅全局）", default=False, help_text="企业微信群机器人答 HTTP 500")
    # Trade bills (devtools/wechat_sandbox/bills.py says what each does). These three apply to a trade:
    bill_omit = models.BooleanField("账单中略去这笔交易", default=False, help_text="对账单里没有这笔支付及其退款")
    bill_total_fee = models.PositiveBigIntegerField(
        "账单中报告的金额（分）",
        null=True,
        blank=True,
        help_text="对账单里这笔交易的应结订单金额与订单金额（手续费随之）；汇总仍与明细相符",
    )
    bill_duplicate_row = models.BooleanField("账单中这笔支付出现两次", default=False, help_text="汇总也按两行计算，如微信的账单")
    # ... and these only to every bill, from the global row:
    bill_add_unknown_trade = models.BooleanField(
        "账单中多一笔未知交易（仅全局）",
        default=False,
        help_text="每份有明细的账单多一笔商户从未下过的支付（¥8.88，虚构的商户订单号与微信订单号），计入汇总",
    )
    bill_corrupt_summary = models.BooleanField(
        "账单汇总金额多 0.01（仅全局）", default=False, help_text="应结订单总金额与明细合计不符，账单无法通过校验"
    )
    bill_not_ready = models.BooleanField(
        "账单生成中（仅全局）",
        default=False,
        help_text="下载账单答「账单生成中」：v2 为 Bill Creating，v3 为 400 STATEMENT_CREATING",
    )

    GLOBAL_ONLY = (
        "bill_add_unknown_trade",
        "bill_corrupt_summary",
        "bill_not_ready",
        "token_busy",
        "message_fail_errcode",
        "message_fail_times",
        "shipping_fail_errcode",
        "shipping_fail_times",
        "robot_down",
    )

    class Meta:
        verbose_name = "沙箱故障开关"
        verbose_name_plural = "沙箱故障开关"

    def __str__(self) -> str:
        return self.out_trade_no or "全局"

    def clean(self):
        super().clean()
        if self.out_trade_no:
            on = {name: "只能在全局开关中设置（商户订单号留空）" for name in self.GLOBAL_ONLY if getattr(self, name)}
            if on:
                raise ValidationError(on)

    @classmethod
    def effective(cls, out_trade_no: str | None) -> Fault:
        """The switches in force for a trade: its own row, else the global row, else none."""
        rows = {f.out_trade_no: f for f in cls.objects.filter(out_trade_no__in=[out_trade_no or "", ""])}
        return rows.get(out_trade_no or "") or rows.get("") or cls()

    def errors_on(self, endpoint: str) -> bool:
        return endpoint in {e.strip() for e in self.systemerror_endpoints.split(",") if e.strip()}


class AccessToken(models.Model):
    """An app's access_token as WeChat holds it (docs/wechat-pay-v2.md#53-access_token).

    stable_token and token keep separate tokens (KINDS). A token works until the earliest of its
    expiry, REPLACED_GRACE after a newer one replaced it, and its revocation (a second forced
    refresh ends the previous one at once). The one not yet replaced is the app's current token."""

    STABLE, PLAIN = "stable", "plain"
    KINDS = [(STABLE, "stable_token"), (PLAIN, "token")]
    REPLACED_GRACE = timedelta(minutes=5)

    appid = models.CharField("应用 appid", max_length=32)
    kind = models.CharField("接口", max_length=8, choices=KINDS)
    access_token = models.CharField("access_token", max_length=200, unique=True)
    forced = models.BooleanField("强制刷新所得", default=False)
    issued_at = models.DateTimeField("发放时间", default=timezone.now)
    expires_at = models.DateTimeField("过期时间")
    replaced_at = models.DateTimeField("被替换时间", null=True, blank=True, help_text="之后至多 5 分钟仍可用")
    revoked_at = models.DateTimeField("作废时间", null=True, blank=True)

    class Meta:
        verbose_name = "沙箱 access_token"
        verbose_name_plural = "沙箱 access_token"
        ordering = ["-issued_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["appid", "kind"], condition=models.Q(replaced_at__isnull=True), name="sandbox_token_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"{self.appid} {self.kind} {self.access_token[:8]}…"

    @property
    def ends_at(self) -> datetime:
        """When it stops working."""
        ends = [self.expires_at]
        if self.replaced_at is not None:
            ends.append(self.replaced_at + self.REPLACED_GRACE)
        if self.revoked_at is not None:
            ends.append(self.revoked_at)
        return min(ends)

    def works(self, now: datetime) -> bool:
        return now < self.ends_at

    @property
    def expired(self) -> bool:
        """Stopped by its own expiry (42001), not by being replaced or revoked (40001)."""
        return self.ends_at == self.expires_at


class MerchantSecret(models.Model):
    """What the sandbox, playing the merchant's own systems, was given once: its counter's API
    key and its webhook receiver's signing secret (kept here: this is a development stand-in)."""

    name = models.CharField(max_length=300, unique=True)
    value = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "商户侧密钥（沙箱）"
        verbose_name_plural = "商户侧密钥（沙箱）"

    def __str__(self) -> str:
        return self.name


class WebhookReceipt(models.Model):
    """A webhook the site sent to the sandbox's receiver, and whether its signature verified."""

    received_at = models.DateTimeField("收到时间", default=timezone.now)
    webhook_id = models.CharField("webhook-id", max_length=80, blank=True)
    event_type = models.CharField("事件", max_length=40, blank=True)
    body = models.TextField("内容")
    signature_valid = models.BooleanField("签名有效", default=False)
    problem = models.CharField("问题", max_length=200, blank=True)

    class Meta:
        verbose_name = "收到的 Webhook（沙箱）"
        verbose_name_plural = "收到的 Webhook（沙箱）"
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"


# --- Messages to users (docs/wechat-pay-v2.md#54-模板消息订阅消息) ------------------------------


class MessageTemplate(models.Model):
    """A template an app has added: the 公众号's 模板消息 or the mini program's 订阅消息.

    `keywords` is a list of [key, name] pairs in the template's order; a key is the keyword's
    type and a number (`amount2`), as WeChat names them. A template the merchant deleted keeps
    its row (deleted_at) so that it can be put back; sends with its id answer 40037."""

    TEMPLATE, SUBSCRIBE = "template", "subscribe"
    KINDS = [(TEMPLATE, "公众号模板消息"), (SUBSCRIBE, "小程序订阅消息")]

    appid = models.CharField("应用 appid", max_length=32)
    kind = models.CharField("类型", max_length=10, choices=KINDS)
    template_id = models.CharField("模板 ID", max_length=64)
    title = models.CharField("标题", max_length=40)
    keywords = models.JSONField("关键词", default=list, help_text='[[key, 名称], …]，如 ["amount2", "充值金额"]')
    deleted_at = models.DateTimeField("删除时间", null=True, blank=True, help_text="商户在后台删除了这个模板：发送答 40037")
    created_at = models.DateTimeField("添加时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱消息模板"
        verbose_name_plural = "沙箱消息模板"
        ordering = ["appid", "pk"]
        constraints = [models.UniqueConstraint(fields=["appid", "template_id"], name="sandbox_template_unique_id")]

    def __str__(self) -> str:
        return f"{self.title} {self.template_id[:8]}…"


class AppUser(models.Model):
    """One sandbox WeChat in one app (appid + openid): whether it follows the 公众号 and whether
    it turned the app's messages off. No row: follows, and takes messages."""

    appid = models.CharField("应用 appid", max_length=32)
    openid = models.CharField("用户 openid", max_length=128)
    follows = models.BooleanField("已关注", default=True, help_text="公众号：未关注的用户收不到模板消息（43004）")
    messages_blocked = models.BooleanField("拒收消息", default=False, help_text="用户关闭了接收消息：发送答 43101")
    updated_at = models.DateTimeField("更新时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱微信用户"
        verbose_name_plural = "沙箱微信用户"
        constraints = [models.UniqueConstraint(fields=["appid", "openid"], name="sandbox_appuser_unique")]

    def __str__(self) -> str:
        return f"{self.appid} {self.openid}"


class SubscribeDecision(models.Model):
    """One answer to wx.requestSubscribeMessage for one template: an accept is one grant, used up
    by one subscribe/send (used_at)."""

    ACCEPT, REJECT, BAN = "accept", "reject", "ban"
    DECISIONS = [(ACCEPT, "允许（accept）"), (REJECT, "拒绝（reject）"), (BAN, "已被封禁（ban）")]

    appid = models.CharField("应用 appid", max_length=32)
    openid = models.CharField("用户 openid", max_length=128)
    template_id = models.CharField("模板 ID", max_length=64)
    decision = models.CharField("选择", max_length=8, choices=DECISIONS)
    decided_at = models.DateTimeField("时间", default=timezone.now)
    used_at = models.DateTimeField("用于发送的时间", null=True, blank=True)

    class Meta:
        verbose_name = "沙箱订阅授权"
        verbose_name_plural = "沙箱订阅授权"
        ordering = ["-decided_at", "-pk"]
        indexes = [models.Index(fields=["appid", "openid", "template_id"], name="sandbox_decision_lookup")]

    def __str__(self) -> str:
        return f"{self.openid} {self.template_id[:8]}… {self.decision}"


class SentMessage(models.Model):
    """A message WeChat accepted for a user: what the user's WeChat shows. The template's title and
    keyword names are copied in, as the message keeps them after the template is deleted."""

    appid = models.CharField("应用 appid", max_length=32)
    kind = models.CharField("类型", max_length=10, choices=MessageTemplate.KINDS)
    openid = models.CharField("接收者 openid", max_length=128)
    msgid = models.BigIntegerField("消息 msgid", unique=True)
    template_id = models.CharField("模板 ID", max_length=64)
    title = models.CharField("标题", max_length=40)
    keywords = models.JSONField("关键词", default=list)
    data = models.JSONField("模板数据 data", default=dict)
    url = models.CharField("跳转链接", max_length=1024, blank=True)
    miniprogram = models.JSONField("跳转小程序", default=dict, blank=True, help_text="{appid, pagepath}")
    page = models.CharField("小程序页面", max_length=1024, blank=True)
    miniprogram_state = models.CharField("小程序版本", max_length=16, blank=True)
    lang = models.CharField("语言", max_length=8, blank=True)
    client_msg_id = models.CharField("去重标识 client_msg_id", max_length=64, blank=True)
    dedupe_key = models.CharField(
        "防重入键", max_length=64, unique=True, null=True, blank=True, help_text="openid + client_msg_id 的摘要，10 分钟内有效"
    )
    sent_at = models.DateTimeField("发送时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱消息"
        verbose_name_plural = "沙箱消息"
        ordering = ["-sent_at", "-pk"]
        indexes = [models.Index(fields=["openid", "sent_at"], name="sandbox_message_openid")]

    def __str__(self) -> str:
        return f"{self.title} → {self.openid}"


# --- Shipping (docs/wechat-pay-v2.md#55-小程序发货信息管理) --------------------------------------


class ShippingOrder(models.Model):
    """A paid mini-program trade as 小程序发货信息管理 holds it: its shipping, once uploaded."""

    UNSHIPPED, SHIPPED, RECEIVED, COMPLETED, REFUNDED = 1, 2, 3, 4, 5
    STATES = [(UNSHIPPED, "待发货"), (SHIPPED, "已发货"), (RECEIVED, "确认收货"), (COMPLETED, "交易完成"), (REFUNDED, "已退款")]

    trade = models.OneToOneField(Trade, on_delete=models.CASCADE, related_name="shipping", verbose_name="交易")
    logistics_type = models.PositiveSmallIntegerField("物流模式", null=True, blank=True)
    delivery_mode = models.PositiveSmallIntegerField("发货模式", null=True, blank=True)
    is_all_delivered = models.BooleanField("分拆发货已全部发出", null=True, blank=True)
    shipping_list = models.JSONField("物流信息", default=list, blank=True)
    finish_shipping = models.BooleanField("已完成发货", default=False)
    finish_shipping_count = models.PositiveSmallIntegerField("完成发货次数", default=0, help_text="重新发货并完成后为 2")
    reshipped = models.BooleanField("已用重新发货机会", default=False)
    received_at = models.DateTimeField("确认收货时间", null=True, blank=True)
    updated_at = models.DateTimeField("更新时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱发货单"
        verbose_name_plural = "沙箱发货单"

    def __str__(self) -> str:
        return f"{self.trade.transaction_id} 发货"

    @classmethod
    def state_for(cls, trade: Trade, order: ShippingOrder | None) -> int:
        """order_state as get_order answers it: 已退款 once the whole amount is refunded, else
        from the shipping (none yet: 待发货)."""
        if trade.total_fee and trade.refunded_fee >= trade.total_fee:
            return cls.REFUNDED
        if order is None or not order.finish_shipping:
            return cls.UNSHIPPED
        return cls.RECEIVED if order.received_at else cls.SHIPPED


class ShippingUpload(models.Model):
    """One accepted upload_shipping_info call, as it came."""

    order = models.ForeignKey(ShippingOrder, on_delete=models.CASCADE, related_name="uploads", verbose_name="发货单")
    body = models.JSONField("请求内容")
    upload_time = models.DateTimeField("上传时间（upload_time）")
    reship = models.BooleanField("重新发货", default=False)
    received_at = models.DateTimeField("收到时间", default=timezone.now)

    class Meta:
        verbose_name = "沙箱发货录入"
        verbose_name_plural = "沙箱发货录入"
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.order} {self.received_at:%H:%M:%S}"


# --- The 企业微信 group robot that receives the site's alerts -----------------------------------


class RobotMessage(models.Model):
    """A message a 企业微信 group robot accepted (what the group shows)."""

    key = models.CharField("机器人 key", max_length=128)
    msgtype = models.CharField("消息类型", max_length=20)
    content = models.TextField("内容")
    body = models.JSONField("请求内容")
    received_at = models.DateTimeField("收到时间", default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "沙箱机器人消息"
        verbose_name_plural = "沙箱机器人消息"
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.msgtype} {self.content[:20]}"

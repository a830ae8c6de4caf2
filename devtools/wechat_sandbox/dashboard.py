"""The /sandbox/ page: trades, notify attempts and the fault switches."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from common.money import format_fen
from devtools.wechat_sandbox import conf, services
from devtools.wechat_sandbox import messages as sandbox_messages
from devtools.wechat_sandbox.models import Attempt, Delivery, Fault, Refund, Trade

TRADES_SHOWN = 30
# Messages, shipping uploads and the alert robot (messages.py, shipping.py, robot.py): global only.
MESSAGE_FIELDS = ["message_fail_errcode", "message_fail_times", "shipping_fail_errcode", "shipping_fail_times", "robot_down"]
# The trade-bill switches (devtools/wechat_sandbox/bills.py), shown under their own heading.
BILL_FIELDS = [
    "bill_omit",
    "bill_total_fee",
    "bill_duplicate_row",
    "bill_add_unknown_trade",
    "bill_corrupt_summary",
    "bill_not_ready",
]


class FaultForm(forms.ModelForm):
    # The H5 product as a permission the merchant has or lacks, chosen like the other states
    h5_no_auth = forms.TypedChoiceField(
        label="H5 支付权限",
        choices=[("False", "已开通（正常）"), ("True", "未开通：H5 下单答 NO_AUTH")],
        coerce=lambda value: value == "True",
        required=False,
        empty_value=False,
        help_text="v2 答 err_code=NOAUTH（商户无此接口权限），v3 答 403 NO_AUTH；用来试改用 Native",
    )

    # The alert robot as a state it is in, chosen like H5 above (absent from an older form: up)
    robot_down = forms.TypedChoiceField(
        label="告警机器人（全局）",
        choices=[("False", "正常"), ("True", "宕机：答 HTTP 500")],
        coerce=lambda value: value == "True",
        required=False,
        empty_value=False,
        help_text="企业微信群机器人（/sandbox/robot/）",
    )

    # Left empty (or absent from an older form), no busy answers
    token_busy = forms.IntegerField(
        label="access_token 繁忙（次，全局）",
        min_value=0,
        required=False,
        help_text="接下来 N 次 stable_token / token 答 errcode -1（系统繁忙）",
    )

    # The sends of messages and shipping uploads: an errcode for the next N (left empty: -1, none)
    message_fail_errcode = forms.TypedChoiceField(
        label="消息发送错误码（全局）",
        choices=[("", "-1 系统繁忙"), ("40001", "40001 access_token 无效"), ("45009", "45009 超过每日调用上限")],
        coerce=int,
        required=False,
        empty_value=None,
    )
    shipping_fail_errcode = forms.TypedChoiceField(
        label="发货录入错误码（全局）",
        choices=[
            ("", "-1 系统繁忙"),
            ("10060012", "10060012 系统错误"),
            ("10060019", "10060019 系统错误"),
            ("40001", "40001 access_token 无效"),
        ],
        coerce=int,
        required=False,
        empty_value=None,
    )
    message_fail_times = forms.IntegerField(
        label="消息发送出错（次，全局）",
        min_value=0,
        required=False,
        help_text="接下来 N 次模板消息或订阅消息的发送答上面的错误码",
    )
    shipping_fail_times = forms.IntegerField(
        label="发货录入出错（次，全局）", min_value=0, required=False, help_text="接下来 N 次 upload_shipping_info 答上面的错误码"
    )

    class Meta:
        model = Fault
        fields = [
            "out_trade_no",
            "drop_notifies",
            "duplicate_notifies",
            "notify_delay_seconds",
            "corrupt_signature",
            "report_total_fee",
            "systemerror_endpoints",
            "end_state",
            "v3_notify_signature",
            "h5_no_auth",
            "token_busy",
            *MESSAGE_FIELDS,
            *BILL_FIELDS,
        ]
        widgets = {
            "out_trade_no": forms.TextInput(attrs={"placeholder": "留空为全局", "autocomplete": "off"}),
            "report_total_fee": forms.NumberInput(attrs={"placeholder": "不改动", "min": "0"}),
            "bill_total_fee": forms.NumberInput(attrs={"placeholder": "如实", "min": "0"}),
            "systemerror_endpoints": forms.TextInput(attrs={"placeholder": "如 orderquery"}),
        }
        # Short labels for a phone's form cells (the admin keeps the models' longer names).
        labels = {
            "out_trade_no": "商户订单号",
            "drop_notifies": "丢弃通知（次）",
            "duplicate_notifies": "每次通知发两遍",
            "report_total_fee": "改报金额（分）",
            "systemerror_endpoints": "出错接口",
            "end_state": "交易/退款结果",
            "v3_notify_signature": "v3 通知签名",
            "bill_omit": "账单中略去",
            "bill_total_fee": "账单金额（分）",
            "bill_duplicate_row": "账单中重复一行",
            "bill_add_unknown_trade": "多一笔未知交易（全局）",
            "bill_corrupt_summary": "汇总金额错（全局）",
            "bill_not_ready": "账单生成中（全局）",
        }
        help_texts = {
            "out_trade_no": "",
            "drop_notifies": "接下来的 N 次通知不发出（照常按微信的间隔重试）",
            "report_total_fee": "通知与查询里报告的 total_fee；留空为如实报告",
            "systemerror_endpoints": "这些接口答 SYSTEMERROR（v3 的对应接口答 500 SYSTEM_ERROR），多个用逗号分隔，"
            "如 unifiedorder,orderquery",
            "bill_omit": "这笔支付及其退款不出现在对账单里",
            "bill_total_fee": "对账单里报告的这笔交易的金额；留空为如实报告",
            "bill_duplicate_row": "这笔支付在对账单里出现两次（汇总也计两次）",
            "bill_add_unknown_trade": "每份账单多一笔本站从未下过的支付（¥8.88），计入汇总",
            "bill_corrupt_summary": "应结订单总金额比明细合计多 0.01，账单无法通过校验",
            "bill_not_ready": "下载账单答「账单生成中」（v2 Bill Creating，v3 STATEMENT_CREATING）",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # WeUI's own controls: switches for the on/off faults, plain inputs for the rest.
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs["class"] = "weui-switch"
            elif isinstance(widget, forms.Select):
                widget.attrs["class"] = "weui-select"
            else:
                widget.attrs["class"] = "weui-input"

    def clean_token_busy(self) -> int:
        return self.cleaned_data["token_busy"] or 0

    def clean_message_fail_times(self) -> int:
        return self.cleaned_data["message_fail_times"] or 0

    def clean_shipping_fail_times(self) -> int:
        return self.cleaned_data["shipping_fail_times"] or 0

    def validate_unique(self):
        pass  # saving updates the row of that out_trade_no


def describe(fault: Fault) -> list[str]:
    """The switches a row turns on, in words, for the list of switches in force."""
    parts = []
    if fault.drop_notifies:
        parts.append(f"丢弃接下来 {fault.drop_notifies} 次通知")
    if fault.duplicate_notifies:
        parts.append("每次通知发两遍")
    if fault.notify_delay_seconds:
        parts.append(f"通知延迟 {fault.notify_delay_seconds} 秒")
    if fault.corrupt_signature:
        parts.append("签名错误")
    if fault.report_total_fee is not None:
        parts.append(f"报告 total_fee={fault.report_total_fee}（¥{format_fen(fault.report_total_fee)}）")
    if fault.systemerror_endpoints:
        parts.append(f"SYSTEMERROR：{fault.systemerror_endpoints}")
    if fault.end_state:
        parts.append(f"结果：{fault.get_end_state_display()}")
    if fault.v3_notify_signature:
        parts.append(f"v3 通知签名：{fault.get_v3_notify_signature_display()}")
    if fault.h5_no_auth:
        parts.append("H5 支付未开通（NO_AUTH）")
    if fault.token_busy:
        parts.append(f"接下来 {fault.token_busy} 次获取 access_token 答 -1（系统繁忙）")
    parts += sandbox_messages.describe_faults(fault)
    if fault.bill_omit:
        parts.append("账单中略去")
    if fault.bill_total_fee is not None:
        parts.append(f"账单金额={fault.bill_total_fee}（¥{format_fen(fault.bill_total_fee)}）")
    if fault.bill_duplicate_row:
        parts.append("账单中重复一行")
    if fault.bill_add_unknown_trade:
        parts.append("账单多一笔未知交易")
    if fault.bill_corrupt_summary:
        parts.append("账单汇总金额错 0.01")
    if fault.bill_not_ready:
        parts.append("账单生成中")
    return parts or ["无（全部正常）"]


def v3_facts() -> dict:
    """What a developer needs to point a v3 merchant client at the sandbox. Never a private
    key nor the APIv3 key: only ids, serials and where the files are."""
    keys, mode = conf.v3_keys(), conf.v3_key_mode()
    files = keys.files
    return {
        "mode": mode,
        "mode_label": conf.KEY_MODES[mode],
        "base_url": settings.SITE_URL + reverse("sandbox:index"),
        "pub_key_id": keys.pay.serial,
        "uses_public_key": mode != conf.CERTIFICATE,
        "platform_serial": keys.platform.serial,
        "uses_certificate": mode != conf.PUBLIC_KEY,
        "merchant_serial": keys.merchant_serial,
        "directory": str(files.directory),
        "merchant_key_file": files.merchant_key.name,
        "pub_key_file": files.pay_public_key.name,
        "certificate_file": files.platform_certificate.name,
    }


@require_http_methods(["GET", "POST"])
def index(request):
    if request.method == "POST":
        form = FaultForm(request.POST)
        if form.is_valid():
            values = {k: v for k, v in form.cleaned_data.items() if k != "out_trade_no"}
            Fault.objects.update_or_create(out_trade_no=form.cleaned_data["out_trade_no"], defaults=values)
            messages.success(request, "故障开关已保存")
            return redirect("sandbox:index")
    else:
        # ?out_trade_no=… opens that trade's switches in the form (the global row otherwise).
        scope = request.GET.get("out_trade_no", "").strip()[:32]
        form = FaultForm(instance=Fault.objects.filter(out_trade_no=scope).first(), initial={"out_trade_no": scope})
    deliveries = (
        Delivery.objects.select_related("refund")
        .prefetch_related(Prefetch("attempt_log", queryset=Attempt.objects.order_by("at", "pk")))
        .order_by("created_at", "pk")
    )
    trades = Trade.objects.prefetch_related(
        Prefetch("deliveries", queryset=deliveries),
        Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "pk")),
    )[:TRADES_SHOWN]
    now = timezone.now()
    for trade in trades:  # amounts in yuan beside WeChat's fen
        trade.yuan, trade.refunded_yuan = format_fen(trade.total_fee), format_fen(trade.refunded_fee)
        # an unpaid Native or H5 trade's live pay link, to open its phone page from here
        live = trade.pay_token and trade.pay_token_expires_at and trade.pay_token_expires_at > now
        trade.link = services.pay_link(trade) if live and trade.state == Trade.NOTPAY else ""
        for refund in trade.refunds.all():
            refund.yuan = format_fen(refund.refund_fee)
    faults = [(fault, describe(fault)) for fault in Fault.objects.order_by("out_trade_no")]
    return render(request, "sandbox/index.html", {"trades": trades, "form": form, "faults": faults, "v3": v3_facts()})


@require_POST
def delete_fault(request, pk: int):
    Fault.objects.filter(pk=pk).delete()
    messages.success(request, "故障开关已删除")
    return redirect("sandbox:index")


@require_POST
def reset_faults(request):
    """Every switch off at once: the global row and every trade's own rows are deleted."""
    deleted, _ = Fault.objects.all().delete()
    messages.success(request, f"已重置全部故障开关（删除 {deleted} 条）" if deleted else "没有生效中的故障开关")
    return redirect("sandbox:index")

"""The /sandbox/ page: trades, notify attempts and the fault switches."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sandbox.models import Attempt, Delivery, Fault, Trade


class FaultForm(forms.ModelForm):
    class Meta:
        model = Fault
        fields = ["out_trade_no", "drop_notifies", "duplicate_notifies", "notify_delay_seconds", "corrupt_signature",
                  "report_total_fee", "systemerror_endpoints", "end_state"]
        labels = {"out_trade_no": "商户订单号（留空为全局）"}

    def validate_unique(self):
        pass  # saving updates the row of that out_trade_no


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
        form = FaultForm(instance=Fault.objects.filter(out_trade_no="").first())
    deliveries = Delivery.objects.prefetch_related(Prefetch("attempt_log", queryset=Attempt.objects.order_by("at")))
    trades = Trade.objects.prefetch_related(Prefetch("deliveries", queryset=deliveries))[:30]
    return render(request, "sandbox/index.html", {
        "trades": trades, "form": form, "faults": Fault.objects.order_by("out_trade_no"),
    })


@require_http_methods(["POST"])
def delete_fault(request, pk: int):
    Fault.objects.filter(pk=pk).delete()
    messages.success(request, "故障开关已删除")
    return redirect("sandbox:index")

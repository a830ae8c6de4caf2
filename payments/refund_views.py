"""The member's refund request page (申请退款, /wallet/refund/): what is refundable of each
recharge and in total, a reason, and the requests made and how they ended."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from common.money import yuan
from payments import services
from payments.refund_requests import Refundable, RefundRequest, RequestRefused

HISTORY = 10


def _part(part: Refundable) -> dict:
    return {
        "order": part.order,
        "paid": yuan(part.paid),
        "bonus": yuan(part.bonus) if part.bonus else None,
        "consumed": yuan(part.consumed),
        "amount": yuan(part.amount),
        "bonus_removed": yuan(part.bonus_removed) if part.bonus_removed else None,
        "manual": part.manual,
    }


@login_required
@require_http_methods(["GET", "POST"])
def refund_request(request):
    user = request.user
    error, reason = "", ""
    if request.method == "POST":
        reason = request.POST.get("reason", "")
        try:
            made = services.submit_refund_request(user, reason)
        except RequestRefused as exc:
            error = str(exc)
        else:
            if made.status == RefundRequest.Status.APPROVED:
                messages.success(request, f"退款申请已自动通过，¥{made.amount_yuan} 将原路退回您的微信")
            else:
                messages.success(request, "退款申请已提交，请等待审核")
            return redirect("payments:refund_request")
    user.refresh_from_db(fields=["balance"])
    parts = Refundable.of_user(user.pk)
    refundable = sum(p.amount for p in parts)
    removed = sum(p.bonus_removed for p in parts)
    requests = list(
        RefundRequest.objects.filter(user=user)
        .prefetch_related("lines__order", "lines__refund")
        .order_by("-created_at", "-pk")[:HISTORY]
    )
    pending = next((r for r in requests if r.status == RefundRequest.Status.PENDING), None)
    return render(
        request,
        "payments/refund_request.html",
        {
            "parts": [_part(p) for p in parts],
            "refundable": yuan(refundable),
            "bonus_removed": yuan(removed) if removed else None,
            "balance_after": yuan(user.balance - refundable - removed),
            "can_request": bool(parts) and pending is None,
            "pending": pending,
            "history": [r for r in requests if r != pending],
            "error": error,
            "reason": reason,
        },
    )

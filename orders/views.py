from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render


@login_required
def history(request):
    orders = request.user.recharge_orders.order_by("-created_at", "-pk").prefetch_related("refunds")
    page = Paginator(orders, 20).get_page(request.GET.get("page"))
    return render(request, "orders/history.html", {"page": page})

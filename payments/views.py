from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def recharge(request):
    return render(request, "payments/recharge.html")

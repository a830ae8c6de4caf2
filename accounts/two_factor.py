"""Operators' second factor (docs/operations.md#两步验证), on django-otp: one TOTP device (an
authenticator app: 微信小程序「腾讯身份验证器」, Google Authenticator, Microsoft Authenticator…)
and ten recovery codes (a StaticDevice, each code good once).

django-otp does the hard parts: a refused code makes the device wait 1, 2, 4… seconds before
it checks another (ThrottlingMixin), and a TOTP code is accepted only for a time step after the
last one accepted (`last_t`), so a code seen over a shoulder cannot be used again. Each check
runs in a transaction on the device's locked row, so two requests cannot both spend a code.
"""

from __future__ import annotations

import math
import re
from base64 import b32encode
from dataclasses import dataclass

import segno
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from audit.log import record

RECOVERY_CODES = 10
DEVICE_NAME = "身份验证器"
RECOVERY_DEVICE_NAME = "恢复码"
# An authenticator's code: six digits. Anything else is tried as a recovery code.
TOTP_CODE = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True)
class Check:
    """The outcome of a code: the device that accepted it, or how long to wait before the next
    try (0: the code was wrong; try again now)."""

    device: Device | None = None
    wait_seconds: int = 0

    @property
    def ok(self) -> bool:
        return self.device is not None

    @property
    def recovery(self) -> bool:
        return isinstance(self.device, StaticDevice)

    @property
    def refusal(self) -> str:
        return f"尝试过多，请 {self.wait_seconds} 秒后再试" if self.wait_seconds else "验证码错误"


def has_authenticator(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def pending_authenticator(user: User) -> TOTPDevice:
    """The device being enrolled: a new secret, unconfirmed until a code from it is entered.
    The same one while the page is shown again, so that a reload does not change the QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def secret_for_typing(device: TOTPDevice) -> str:
    """The secret in base32, in groups of four, for an app that cannot scan."""
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_qr_svg(device: TOTPDevice) -> SafeString:
    """The otpauth:// URL as an inline SVG QR code (no script, no style: the site's CSP holds),
    dark on a white square, so that it scans in the admin's dark theme too."""
    qr = segno.make(device.config_url, error="m")
    return mark_safe(qr.svg_inline(scale=4, border=4, dark="#000", light="#fff"))  # noqa: S308 (segno's own markup)


def _normalized(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def _wait_seconds(device: Device) -> int:
    allowed, data = device.verify_is_allowed()
    if allowed or not data or "locked_until" not in data:
        return 0
    return max(1, math.ceil((data["locked_until"] - timezone.now()).total_seconds()))


def _check(devices: list[Device], code: str) -> Check:
    """Refused while any of the devices is throttled: recovery codes and the app share one wait.
    Otherwise the code goes to the device its shape names, and a refusal makes it wait."""
    wait = max((_wait_seconds(d) for d in devices), default=0)
    if wait:
        return Check(wait_seconds=wait)
    code = _normalized(code)
    kind = TOTPDevice if TOTP_CODE.match(code) else StaticDevice
    for device in devices:
        if isinstance(device, kind) and device.verify_token(code):
            return Check(device=device)
    return Check()


def verify(user: User, code: str) -> Check:
    """Check a code at sign-in, from the app or a recovery code (which is then spent)."""
    with transaction.atomic():
        devices: list[Device] = [
            *TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True),
            *StaticDevice.objects.select_for_update().filter(user=user, confirmed=True),
        ]
        return _check(devices, code)


def confirm_authenticator(device: TOTPDevice, code: str) -> tuple[Check, list[str]]:
    """Enrol `device` if `code` is its current code: it replaces the user's former app, and
    ten new recovery codes replace the former ones. Returns the check and the new codes
    (to be shown once)."""
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().filter(pk=device.pk, confirmed=False).first()
        if locked is None:  # enrolled (or reset) meanwhile by another request: start again
            return Check(), []
        device = locked
        check = _check([device], code)
        if not check.ok:
            return check, []
        TOTPDevice.objects.filter(user=device.user_id).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return Check(device=device), new_recovery_codes(device.user)


def new_recovery_codes(user: User) -> list[str]:
    """Ten new recovery codes for `user`; the former ones no longer work."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def reset(user: User, *, reason: str, request: HttpRequest | None = None, actor: User | None = None) -> int:
    """Forget `user`'s authenticator and recovery codes (a lost phone, a superuser's decision),
    on the audit log with the reason: at the next sign-in the operator enrols again. Returns
    how many devices were removed."""
    with transaction.atomic():
        authenticators, recovery = TOTPDevice.objects.filter(user=user), StaticDevice.objects.filter(user=user)
        removed = authenticators.count() + recovery.count()
        authenticators.delete()
        recovery.delete()
        record(
            "user.change",
            request=request,
            actor=actor,
            obj=user,
            changes={"两步验证": "已重置（身份验证器和恢复码已删除）"},
            reason=reason,
        )
    return removed

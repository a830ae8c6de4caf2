"""Writing the audit log: `record(action, ...)` in the action's own code, after (or in the same
transaction as) what it did. Never raises for want of a request or an object."""

from __future__ import annotations

import json
import logging

from django.db.models import Model
from django.http import HttpRequest

from audit.models import ACTIONS, AuditEntry
from common.http import client_ip

logger = logging.getLogger(__name__)


def record(
    action: str,
    *,
    request: HttpRequest | None = None,
    actor=None,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    changes: dict | None = None,
    reason: str = "",
) -> AuditEntry:
    """One row: `action` (a key of ACTIONS) by `actor` (default: the request's user) from the
    request's address, about `obj` (or the object named by type, id and repr), with what
    changed and the operator's reason. `changes` maps a Chinese name to a value: a change is
    {"from": before, "to": after} (`change(before, after)`), a list is names, anything else a
    figure ({"退款金额": "¥10.00"})."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if obj is not None:
        meta = obj._meta
        object_type = object_type or f"{meta.app_label}.{meta.model_name}"
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        address=client_ip(request) if request is not None else None,
        action=action,
        object_type=object_type[:100],
        object_id=str(object_id)[:64],
        object_repr=object_repr[:200],
        # As JSON keeps it (a date, a Decimal, a model: its text).
        changes=json.loads(json.dumps(changes or {}, default=str, ensure_ascii=False)),
        reason=(reason or "").strip()[:500],
    )


def change(before, after) -> dict:
    return {"from": before, "to": after}


def describe(value) -> str:
    """A value of `changes` for people: "before → after", names joined, "键：值；键：值" for
    other mappings (an export's filters), or the figure."""
    if isinstance(value, dict) and set(value) == {"from", "to"}:
        return f"{value['from']} → {value['to']}"
    if isinstance(value, dict):
        return "；".join(f"{key}：{describe(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "、".join(describe(v) for v in value)
    return str(value)


def history(obj: Model):
    """The audit rows about `obj`, oldest first (the order's timeline)."""
    meta = obj._meta
    return AuditEntry.objects.filter(object_type=f"{meta.app_label}.{meta.model_name}", object_id=str(obj.pk)).order_by(
        "at", "pk"
    )

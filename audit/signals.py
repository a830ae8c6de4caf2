"""What the audit log hears without the actions' own code: operators signing in (and failing
to), and permissions or roles granted or taken away, wherever that happens (the admin's user
and group pages, the shell). The request, when there is one, comes from CurrentRequest."""

from __future__ import annotations

import contextvars

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from audit.log import record

_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)


class CurrentRequest:
    """Middleware: the request being served, for the signals above (m2m changes carry none)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)


def current_request():
    return _request.get()


def _in_admin(request) -> bool:
    return request is not None and request.path.startswith("/admin/")


@receiver(user_logged_in)
def signed_in(sender, request, user, **kwargs):
    if user.is_staff:
        record("signin", request=request, actor=user, obj=user)


@receiver(user_login_failed)
def sign_in_failed(sender, credentials, request=None, **kwargs):
    if _in_admin(request):
        name = str(credentials.get("username", ""))[:150]
        record("signin_failed", request=request, object_type="accounts.user", object_repr=name)


def _names(model, pks) -> list[str]:
    return sorted(str(o) for o in model.objects.filter(pk__in=pks)) if pks else []


@receiver(m2m_changed, sender=get_user_model().groups.through)
@receiver(m2m_changed, sender=get_user_model().user_permissions.through)
@receiver(m2m_changed, sender=Group.permissions.through)
def permissions_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    request = current_request()
    if action not in ("post_add", "post_remove", "post_clear") or reverse or request is None:
        return  # no request: migrate keeping the roles in step (wxrecharge/roles.py), or the shell
    what = "group.permissions" if isinstance(instance, Group) else "user.permissions"
    field = "角色" if model is Group else "权限"
    names = _names(model, pk_set) if action != "post_clear" else ["（全部）"]
    change = {f"{field}{'增加' if action == 'post_add' else '移除'}": names}
    record(what, request=request, obj=instance, changes=change)

"""WSGI entry point for gunicorn.

Django only runs system checks for management commands, so a production server started
with gunicorn would otherwise boot with the sandbox on or a secret missing. Run them here
and refuse to start on any error.

WeChat Pay's notifies are served beside Django's handler (payments.middleware.NotifyApplication):
they need none of its URL resolving or page middleware.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wxrecharge.settings")

django_application = get_wsgi_application()


def _refuse_dangerous_configuration() -> None:
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    errors = [m for m in checks.run_checks() if m.is_serious()]
    if errors:
        raise ImproperlyConfigured("\n".join(str(m) for m in errors))


_refuse_dangerous_configuration()

from payments.middleware import NotifyApplication  # noqa: E402 (needs the apps loaded)

application = NotifyApplication(django_application)

"""Reading settings from the environment: django-environ's `Env`, with booleans that must say
yes or no.

django-environ reads any value it does not know as False, so `DJANGO_DEBUG=ture` or
`DJANGO_SECURE_SSL_REDIRECT=flase` would silently turn a switch off. Here such a value is
an error that names the variable (the value of a yes/no switch is no secret).
"""

from __future__ import annotations

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


class Env(environ.Env):
    def bool(self, var, default=environ.Env.NOTSET):  # django-environ's name for it
        raw = self.ENVIRON.get(var)
        if raw is None or not raw.strip():
            if default is environ.Env.NOTSET:
                raise ImproperlyConfigured(f"Set the environment variable {var} (1 or 0).")
            return default
        value = raw.strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise ImproperlyConfigured(f"{var}={raw.strip()!r} is neither yes nor no: use 1 or 0 (also true/false, yes/no, on/off).")

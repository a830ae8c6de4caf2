"""Logging for a site that hosts the sandbox."""

from __future__ import annotations

import logging


class QuietSandboxAnswers(logging.Filter):
    """Drop Django's "Bad Request"/"Not Found" warnings for the sandbox's own 4xx answers:
    they are WeChat's protocol answers (no bill yet, order not found, SIGN_ERROR), which
    the merchant side logs in its own terms; the sandbox's 5xx still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "django.request" or getattr(record, "status_code", 500) >= 500:
            return True
        path = getattr(getattr(record, "request", None), "path", "")
        return not path.startswith("/sandbox/")

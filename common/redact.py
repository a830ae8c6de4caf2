"""Text about a failure, made fit for logs, alerts and the admin: an exception's message may
quote the URL it failed on, and some URLs carry their secret (a 企业微信 robot's `key=`, an
`access_token=`, a database URL's password). What such text stores or shows goes through
`redact` first, cut to a length that fits a column."""

from __future__ import annotations

import re

HIDDEN = "***"

# name=value pairs whose value is a secret, in a query string or a message ("key=…&").
_SECRET_PARAMETER = re.compile(
    r"(?i)\b(key|access_token|token|secret|password|passwd|sign|signature|api_key|apikey)=([^&\s'\"<>,;)]+)"
)
# user:password@ in a URL.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact(text: str, *secrets: str, limit: int = 300) -> str:
    """`text` with secret parameters, URL passwords and each of `secrets` hidden, on one line,
    at most `limit` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, HIDDEN)
    text = _SECRET_PARAMETER.sub(lambda m: f"{m[1]}={HIDDEN}", text)
    text = _USERINFO.sub(lambda m: f"{m[1]}{HIDDEN}@", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException, *secrets: str, limit: int = 300) -> str:
    """An exception as one redacted line: its class and message."""
    message = str(exc)
    return redact(f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__, *secrets, limit=limit)

"""The JSON API's shared parts (docs/product.md#5-json-endpoints): a request body read once as a
JSON object, and one answer for a failed call to WeChat, the same from every endpoint."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse

from common.http import json_error
from wxproto.errors import WeChatError


def json_object(request: HttpRequest) -> dict | None:
    """The body as a JSON object; None for anything else (not JSON, not UTF-8, a list, a number…)."""
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def wechat_error(exc: WeChatError, **extra) -> JsonResponse:
    """A call to WeChat failed: 502 `wechat_unavailable` when WeChat may not have answered or
    asks to try again later (the same request may then succeed), else 502 `wechat_error`;
    WeChat's code as `detail`."""
    code = "wechat_unavailable" if exc.retryable or not exc.answered else "wechat_error"
    return json_error(code, 502, detail=exc.code, **extra)

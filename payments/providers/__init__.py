"""The payment providers and their registry (docs/architecture.md#the-payment-seam).

A provider is one module here with one class (payments/providers/base.py says what it must
do) and one line in PROVIDERS. `provider()` gives the flows the one WECHAT_PAY_API names,
for an app (the 公众号, or the mini program), built once per merchant configuration and
thread and then reused (its HTTP session, keys and downloaded certificates with it).
Notifies name their provider in their URL (`provider_class`), so an order placed with one
still settles by its notify after a switch to another.
"""

from __future__ import annotations

import os
import threading

from django.utils.module_loading import import_string

from payments.merchant import Merchant
from payments.providers.base import Provider, WeChatError

# name -> the provider's class (dotted path). WECHAT_PAY_API "v2" and "v3" name the first two.
PROVIDERS = {
    "wechat_v2": "payments.providers.wechat_v2.WeChatV2",
    "wechat_v3": "payments.providers.wechat_v3.WeChatV3",
}
_local = threading.local()


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return 0.0


def provider_class(api: str) -> type[Provider]:
    """The provider class for an API version (v2, v3) or a registry name."""
    name = api if api in PROVIDERS else f"wechat_{api}"
    if name not in PROVIDERS:
        raise WeChatError(f"WECHAT_PAY_API is {api!r}, not one of {', '.join(PROVIDERS)}", "CONFIG")
    return import_string(PROVIDERS[name])


def provider(channel: str = "jsapi", api: str | None = None) -> Provider:
    """The provider for one app (channel "jsapi": the 公众号; "miniprogram"), the one
    WECHAT_PAY_API names unless `api` says otherwise."""
    merchant = Merchant.current()
    cls = provider_class(api or merchant.api)
    appid = merchant.appid_for(channel)
    # A key file replaced at the same path (a renewed certificate) makes a new provider too.
    key = (cls, appid, merchant, _mtime(merchant.mch_private_key), _mtime(merchant.pay_public_key))
    cache = getattr(_local, "providers", None)
    if cache is None:
        cache = _local.providers = {}
    found = cache.get(key)
    if found is None:
        if len(cache) > 8:  # settings changed many times (tests): keep the cache small
            cache.clear()
        found = cache[key] = cls(merchant, appid)
    return found


def notify_routes() -> list[tuple[str, str, str, str]]:
    """Every registered provider's notify endpoints: (path, URL name, api, kind)."""
    routes = []
    for name in PROVIDERS:
        cls = provider_class(name)
        routes += [(path, url_name, cls.api, kind) for kind, (path, url_name) in cls.NOTIFY_ROUTES.items()]
    return routes

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

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from payments.merchant import Merchant
from payments.providers.base import Provider, WeChatError

# name -> the provider's class (dotted path). WECHAT_PAY_API "v2" and "v3" name the first two.
PROVIDERS = {
    "wechat_v2": "payments.providers.wechat_v2.WeChatV2",
    "wechat_v3": "payments.providers.wechat_v3.WeChatV3",
}
_local = threading.local()
# Settings change while the site runs only where Django says so (setting_changed: a test's
# override); counted, so that the configuration last read stands until the count moves.
_settings_changes = [0]


@receiver(setting_changed)
def _count_settings_change(**kwargs) -> None:
    _settings_changes[0] += 1


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
    # Every notify asks: while no setting has changed since, the answer last given, unless
    # a key file was replaced at its path (a renewed certificate makes a new provider).
    recent = getattr(_local, "recent", None)
    if recent is None:
        recent = _local.recent = {}
    asked = (_settings_changes[0], channel, api)
    last = recent.get(asked)
    if last is not None and last[2] == tuple(map(_mtime, last[1])):
        return last[0]
    merchant = Merchant.current()
    cls = provider_class(api or merchant.api)
    appid = merchant.appid_for(channel)
    paths = (merchant.mch_private_key, merchant.pay_public_key)
    mtimes = tuple(map(_mtime, paths))
    key = (cls, appid, merchant, *mtimes)
    cache = getattr(_local, "providers", None)
    if cache is None:
        cache = _local.providers = {}
    found = cache.get(key)
    if found is None:
        if len(cache) > 8:  # settings changed many times (tests): keep the cache small
            cache.clear()
        found = cache[key] = cls(merchant, appid)
    if len(recent) > 8:
        recent.clear()
    recent[asked] = (found, paths, mtimes)
    return found


def notify_routes() -> list[tuple[str, str, str, str]]:
    """Every registered provider's notify endpoints: (path, URL name, api, kind)."""
    routes = []
    for name in PROVIDERS:
        cls = provider_class(name)
        routes += [(path, url_name, cls.api, kind) for kind, (path, url_name) in cls.NOTIFY_ROUTES.items()]
    return routes

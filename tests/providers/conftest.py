"""The provider contract suite's fixture: every registered provider, one at a time, through
the sandbox (docs/architecture.md#the-payment-seam)."""

from __future__ import annotations

import pytest

from payments.providers import PROVIDERS, Provider, provider, provider_class


@pytest.fixture(params=sorted(PROVIDERS))
def pay(request, settings, sandbox_url, transactional_db) -> Provider:
    """The provider `request.param` names, as the flows get it (`provider()`), with
    WECHAT_PAY_API set to its api and WeChat played by the sandbox over HTTP."""
    settings.WECHAT_PAY_API = provider_class(request.param).api
    found = provider()
    assert found.name == request.param
    return found

from __future__ import annotations

import pytest


@pytest.fixture
def slow_refunds(settings):
    """Refunds settle 2s after they are accepted (the default scale), so a test can see them
    PROCESSING; tests move them on by making them due (settle_at) rather than waiting."""
    settings.SANDBOX_NOTIFY_TIME_SCALE = 1.0

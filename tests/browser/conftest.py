"""Playwright driving Debian's Chromium against the live test server.

Browser tests skip (with the reason shown) when no Chromium is found, unless
REQUIRE_BROWSER=1, as in CI, where a missing browser is a failure. Debian's
chromium-headless-shell (the same engine without the desktop browser around it, about
twice as quick to start a page) is used when installed, else /usr/bin/chromium;
CHROMIUM_PATH overrides both.

Screenshots of each page, on a phone in WeChat and on a desktop, are taken with SCREENSHOTS=1
(`make screenshots`) into `screenshots/` (or SCREENSHOT_DIR), for a person to look at; the
plain test run skips them (46 full-page PNGs were a tenth of the browser tests' CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or next(
    (path for path in ("/usr/bin/chromium-headless-shell", "/usr/bin/chromium") if os.path.exists(path)), "/usr/bin/chromium"
)
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "screenshots"))
SCREENSHOTS = os.environ.get("SCREENSHOTS") == "1"
# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are still synchronous, so Django's async guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or chromium-headless-shell)")
    from playwright.sync_api import expect, sync_playwright

    # The other xdist worker keeps the second core busy: give assertions time, as clicks have.
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def quick_code_polls(monkeypatch):
    """The member-code page asks whether its code was charged every 2 s; here every 0.25 s, so
    that a test waiting for 支付成功 after a counter's charge waits no longer than it must."""
    monkeypatch.setattr("wallet.paycode.POLL_SECONDS", 0.25)


@pytest.fixture
def page(browser, live_server, settings):
    settings.SITE_URL = live_server.url
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


# WeChat's in-app browser on an iPhone, as the pages see it.
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47 NetType/WIFI Language/zh_CN"
)


def open_page(browser, **options):
    """A page in a context of its own, whose console errors and page errors are kept in
    `page.errors` (a test asserts there are none)."""
    context = browser.new_context(locale="zh-CN", **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


@pytest.fixture
def phone(browser, live_server, settings):
    """A member's phone, in WeChat."""
    settings.SITE_URL = live_server.url
    page = open_page(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, user_agent=WECHAT_UA, is_mobile=True)
    yield page
    page.context.close()


def wechat_member(page, live_server, username: str, **fields):
    """A member whose 公众号 WeChat is the one this (WeChat) page is: the sandbox's 网页授权 gives
    the page's browser `username`'s openid, which the account is bound to. Only the account's
    own WeChat is offered JSAPI (docs/paying.md)."""
    from django.conf import settings

    from devtools.wechat_sandbox.oauth import BROWSER_COOKIE
    from devtools.wechat_sandbox.services import openid_for
    from tests.factories import make_user

    page.context.add_cookies([{"name": BROWSER_COOKIE, "value": username, "url": live_server.url}])
    return make_user(username, openid=openid_for(settings.WECHAT_APPID, username), **fields)


def shoot(page, name: str) -> Path | None:
    """A full-page screenshot named `name`, when screenshots are asked for."""
    if not SCREENSHOTS:
        return None
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_with_cookie(page, live_server, username: str, next_path: str = "/recharge/") -> None:
    """Signed in as `username` without the sign-in form, which has tests of its own: a session
    made on the server, its cookie handed to the browser; then `next_path`, loaded."""
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.get(username=username), backend="django.contrib.auth.backends.ModelBackend")
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "url": live_server.url,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            }
        ]
    )
    page.goto(live_server.url + next_path)


@pytest.fixture
def screenshot(page):
    return lambda name: shoot(page, name)


@pytest.fixture
def desk(browser, live_server, settings):
    """A desktop window (1366 × 900): the sandbox's counter, the admin."""
    settings.SITE_URL = live_server.url
    page = open_page(browser, viewport={"width": 1366, "height": 900})
    yield page
    page.context.close()


def wait_until(check, seconds: float = 10) -> bool:
    """What the server side does outside the browser (the sandbox settling a refund, its notify
    thread delivering): asked until it holds or `seconds` pass."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def why_refund_not_settled() -> str:
    """What each side knows, for a refund that did not settle in time."""
    from devtools.wechat_sandbox.models import Delivery
    from devtools.wechat_sandbox.models import Refund as SandboxRefund
    from orders.models import Refund
    from payments.models import Notification

    return "; ".join(
        [
            f"ours: {list(Refund.objects.values_list('status', 'accepted', 'last_error'))}",
            f"sandbox: {list(SandboxRefund.objects.values_list('state', 'settle_at'))}",
            f"deliveries: {list(Delivery.objects.values_list('kind', 'state', 'next_attempt_at'))}",
            f"notifies: {list(Notification.objects.values_list('kind', 'outcome', 'detail'))}",
        ]
    )

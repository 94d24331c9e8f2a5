"""Browser tests: Playwright for Python driving Debian's Chromium headless against pytest-django's ``live_server``.

Playwright's own browser download does not work here, so the browser is the Debian package's ``/usr/bin/chromium``.
Without it (or when it cannot start) the browser tests skip and say why; in CI (``STEWARD_BROWSER_REQUIRED=1``, set
by ``.ci/run``, which installs Chromium) they fail instead.

``live_server`` serves the static files through ``django.contrib.staticfiles``' finders, so the admin's CSS and
JavaScript load as in ``make run``; every page is checked for failed requests and script errors.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from django.contrib.auth.models import User
from pytest_django.live_server_helper import LiveServer

from audit.models import AuditEvent

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
# As root on a machine with a closed network: no sandbox, and no background connections Chromium would try.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLAYWRIGHT_MISSING = "Playwright is not installed: pip install -r requirements-dev.txt to run the browser tests"
PASSWORD = "correct horse battery"  # the cast's password (``make_user`` in tests/conftest.py)
TIMEOUT_MS = 10_000


def browser_required() -> bool:
    return os.environ.get("STEWARD_BROWSER_REQUIRED") == "1"


def unavailable(reason: str) -> NoReturn:
    """No browser: a failure in CI, a skip (saying why) on a developer's machine."""
    if browser_required():
        pytest.fail(f"{reason} (STEWARD_BROWSER_REQUIRED=1: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def browser() -> Iterator["Browser"]:
    """One headless Chromium for the browser tests, each test in fresh contexts of its own.

    Playwright's sync API keeps an asyncio loop running on this thread while it lives, which Django reads as "called
    from async code" and refuses the ORM; the tests are plain synchronous code, so that check is lifted, for this
    package's tests only (the browser and the exemption end with them).
    """
    if not CHROMIUM.exists():
        unavailable("Chromium is not installed: apt-get install chromium to run the browser tests")
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable(PLAYWRIGHT_MISSING)
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    playwright = sync_playwright().start()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        try:
            # launch() gives every run a fresh, empty user data directory of its own.
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS, timeout=30_000
            )
        except Error as error:
            unavailable(f"Chromium ({CHROMIUM}) did not start: {launch_failure(error.message)}")
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def launch_failure(message: str) -> str:
    """Playwright's first line, and what the browser itself said on stderr (its last few lines)."""
    lines = message.splitlines()
    said = [line.split("[err] ", 1)[1] for line in lines if "[err] " in line and not line.lstrip().startswith("- ")]
    return " | ".join([lines[0] if lines else "unknown error", *said[-5:]])


Console = Callable[[User], "Page"]


@pytest.fixture
def console(browser: "Browser", live_server: LiveServer) -> Iterator[Console]:
    """``console(user)``: a page in a browser context of its own, logged in as ``user`` through the real admin
    login page. At the end, no page may have had a failed request or a script error."""
    contexts = []
    problems: list[str] = []

    def open_as(user: User) -> "Page":
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"{user.username}: script error: {error}"))

        def on_response(response: Any) -> None:
            if response.status >= 400 and not response.url.endswith("/favicon.ico"):
                problems.append(f"{user.username}: {response.status} for {response.url}")

        page.on("response", on_response)

        def on_failed(request: Any) -> None:
            if request.failure != "net::ERR_ABORTED":  # left behind by a navigation: not a failure of the server's
                problems.append(f"{user.username}: {request.failure} for {request.url}")

        page.on("requestfailed", on_failed)
        login(page, user)
        return page

    yield open_as
    for context in contexts:
        context.close()
    assert problems == []


def login(page: "Page", user: User, password: str = PASSWORD) -> None:
    """Log in through the admin's login page, as a person would, and check the console's styles loaded."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    assert user.username.upper() in page.inner_text("#user-tools").upper()
    assert AuditEvent.objects.filter(action="auth.login", actor_label=user.username).exists()
    stylesheet_rules = page.evaluate(
        "() => [...document.styleSheets].filter(s => (s.href || '').endsWith('/static/admin/css/base.css'))"
        ".map(s => s.cssRules.length)"
    )
    assert stylesheet_rules, "the admin's stylesheet is not on the page"
    assert stylesheet_rules[0] > 0, "the admin's stylesheet did not load"

"""Shared by the browser tests: Debian's chromium through Playwright, and a callcheck serving the sandbox.

Pages send a strict CSP (no eval), so waits use locators and `expect`, never wait_for_function("...").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from callcheck.providers.elevenlabs.sandbox import HeldClock
from tests.conftest import settings_for
from tests.servers import AppServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# The least a page action or `expect` waits. Deadlines only catch a page that never gets there: on two cores shared
# by many test processes, a page load or a live update took longer than Playwright's 5 s and a test's 15-20 s.
SLOW_MACHINE_MS = 60_000

# Mark a browser test module with this: it is a browser test (and e2e), skipped where there is no chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium"),
]


@contextmanager
def chromium(playwright_sync: Any) -> Iterator[Any]:
    """A headless Debian chromium driven by Playwright (sync API)."""
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        playwright_sync.expect.set_options(timeout=SLOW_MACHINE_MS)
        yield browser
        browser.close()


@contextmanager
def sandbox_app(tmp: Path, time_scale: float) -> Iterator[AppServer]:
    """`callcheck serve --sandbox` in a thread, without the developer's ELEVENLABS_*/CALLCHECK_* variables; its
    sandbox runs on a HeldClock (`app_server.sandbox_clock`), for the tests that must see a call move."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("ELEVENLABS_", "CALLCHECK_")):
                patch.delenv(name)
        settings = settings_for(None, tmp).model_copy(update={"sandbox": True, "sandbox_time_scale": time_scale})
        with AppServer(settings, sandbox_clock=HeldClock()) as app_server:
            yield app_server


@contextmanager
def watched_page(browser: Any, init_script: str, timeout_ms: int) -> Iterator[Any]:
    """A fresh desktop-sized tab running `init_script` on every document; fails the test on any page error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(init_script)
    tab = context.new_page()
    tab.set_default_timeout(max(timeout_ms, SLOW_MACHINE_MS))
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors

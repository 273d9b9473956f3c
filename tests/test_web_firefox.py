"""The web page in Firefox (Debian's firefox-esr, driven through Marionette): place a call, watch it end live."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browsing import ARTIFACTS, SLOW_MACHINE_MS, sandbox_app
from tests.servers import AppServer, free_port

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(FIREFOX), reason="needs Debian's firefox-esr"),
    # marionette_driver's port probe (raise_for_port) leaves its sockets to the garbage collector; the leak is in
    # the driver, not in callcheck, so only this module tolerates it.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with sandbox_app(tmp_path_factory.mktemp("firefox"), 0.08) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from marionette_driver.marionette import Marionette

    home = tmp_path_factory.mktemp("firefox-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))  # Firefox writes caches under $HOME: keep them in the test's temp dir
        client = Marionette(
            bin=FIREFOX, headless=True, host="127.0.0.1", port=free_port(), gecko_log=str(home / "gecko.log")
        )
        try:
            client.start_session()
            yield client
        finally:
            client.delete_session()
            client.cleanup()


def wait_until(check: Any, timeout: float = SLOW_MACHINE_MS / 1000) -> None:
    """Wait for `check()`; the deadline only catches a page that never gets there (a load took over 20 s here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_place_a_call_and_watch_it_end_without_reload(server: AppServer, firefox: Any) -> None:
    from marionette_driver import By
    from marionette_driver.errors import NoSuchElementException, StaleElementException

    firefox.navigate(server.url + "/")
    firefox.find_element(By.ID, "description").send_keys("Rosie's Bakery, a bakery that takes cake orders.")
    firefox.find_element(By.ID, "scenario").send_keys("order a birthday cake for Saturday")
    number = firefox.find_element(By.ID, "to_number")
    number.send_keys("+1555")
    # Validated as E.164 while typing, with the seed's message.
    wait_until(lambda: "E.164" in firefox.find_element(By.ID, "number-status").text)
    number.send_keys("0100007")
    seen: set[str] = set()

    def completed() -> bool:
        try:
            state = firefox.find_element(By.ID, "timeline").get_attribute("data-state")
        except (StaleElementException, NoSuchElementException):
            return False  # not loaded yet, or swapped for a fresher copy between finding and reading it
        seen.add(state)
        return state == "completed"

    # The call's sandbox clock stands still until the page has shown it: however slow the page load, the call
    # cannot end before the page watches it (on the loose clock a loaded machine made `seen` a single state).
    assert server.sandbox_clock is not None
    with server.sandbox_clock.held():
        firefox.find_element(By.ID, "place-call").click()
        wait_until(lambda: "/calls/" in firefox.get_url())
        # A marker on this document: it survives only if the page is never reloaded.
        firefox.execute_script("window.__sameDocument = true;", sandbox=None)
        wait_until(lambda: completed() or bool(seen))
        assert "completed" not in seen, seen
    wait_until(completed)
    assert firefox.execute_script("return window.__sameDocument === true;", sandbox=None) is True
    assert len(seen) >= 2, seen  # it moved while we watched
    wait_until(lambda: firefox.find_element(By.CSS_SELECTOR, ".chip-keypad").text == "Pressed 2")
    assert firefox.find_element(By.ID, "verdict").text == "Successful"
    ARTIFACTS.mkdir(exist_ok=True)
    (Path(ARTIFACTS) / "call-page-firefox.png").write_bytes(firefox.screenshot(format="binary", full=True))

"""The page in a real browser (Debian's chromium through Playwright) against a real server on the sandbox.

A person fills the form, places calls to the sandbox's magic numbers and watches each call page move to its final
state without a reload; errors appear in words; the history finds the calls again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from callcheck.domain.phone import E164_ERROR
from tests.browsing import ARTIFACTS, BROWSER_MARKS, chromium, sandbox_app, watched_page
from tests.conftest import settings_for
from tests.servers import AppServer

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
BAKERY = "Rosie's Bakery, a neighbourhood bakery that takes orders for birthday cakes by phone."

# Runs in every page before its own scripts: records what the live status line and the timeline showed, and marks
# the document, so a test can tell that states changed while the page itself was never reloaded.
WATCH_SCRIPT = """
window.__statuses = [];
window.__states = [];
document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("live-status");
  const record = () => {
    const timeline = document.getElementById("timeline");
    const state = timeline && timeline.dataset.state;
    if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
    if (status && window.__statuses[window.__statuses.length - 1] !== status.textContent) {
      window.__statuses.push(status.textContent);
    }
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
});
"""

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """`callcheck serve --sandbox` in a thread, calls slowed so the timeline visibly moves (~3 s a call)."""
    with sandbox_app(tmp_path_factory.mktemp("web"), 0.08) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_sync) as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with watched_page(browser, WATCH_SCRIPT, 15_000) as tab:
        yield tab


def place(page: Any, url: str, number: str, scenario: str = "") -> str:
    """Fill the form and place a call; the id of the call page it lands on."""
    page.goto(url + "/")
    page.get_by_label("Business description").fill(BAKERY)
    page.get_by_label("Scenario").fill(scenario)
    page.get_by_label("Phone number to call").fill(number)
    page.get_by_role("button", name="Place the call").click()
    page.wait_for_url(re.compile(r"/calls/\w+$"))
    return page.url.rsplit("/", 1)[1]


@contextmanager
def standing_still(page: Any, server: AppServer) -> Iterator[None]:
    """Place a call inside this block: its sandbox clock is held until the call page has shown it, so the page is
    sure to see it move. (A call left to run loose could end before a slow page load subscribes, and the page would
    then be rendered already final: the test would depend on how loaded the machine is.)"""
    assert server.sandbox_clock is not None
    with server.sandbox_clock.held():
        yield
        page.wait_for_selector("#timeline[data-state]")
        assert page.locator("#call").get_attribute("data-live") == "true"


def watch_to_the_end(page: Any, final_state: str, *, must_move: bool = True) -> None:
    """Wait for the final state to appear on the open call page, and check the page was never reloaded.

    `must_move=True` needs the call placed inside `standing_still`; `must_move=False` for outcomes so quick (busy:
    80 ms here) that the page may first be rendered already final.
    """
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector(f'#timeline[data-state="{final_state}"]')
    expect(page.locator("#call")).to_have_attribute("data-live", "false")
    assert page.evaluate("window.__sameDocument") is True
    assert navigations == []
    states = page.evaluate("window.__states")
    assert states[-1] == final_state, states
    if must_move:
        assert len(states) >= 2 and states[0] != final_state, states
        assert len(page.evaluate("window.__statuses")) >= 2


def test_calls_move_live_to_their_final_state(server: AppServer, page: Any) -> None:
    # Answered, the IVR is worked with the keypad and the request completed.
    with standing_still(page, server):
        call_id = place(page, server.url, "+15550100007", "order a birthday cake for Saturday")
    watch_to_the_end(page, "completed")
    assert page.locator("#live-status").inner_text().startswith("Completed")
    assert page.locator("#verdict").inner_text() == "Successful"
    assert "SB-" in page.locator("#summary").inner_text()
    assert page.locator(".bubble-caller").count() >= 3 and page.locator(".bubble-business").count() >= 2
    assert "order a birthday cake for Saturday" in page.locator(".bubble-caller").first.inner_text()
    assert page.locator(".chip-keypad").inner_text() == "Pressed 2"
    figures = page.locator("#figures").inner_text()
    for label in ("Time to first answer", "Turns", "Human reached", "Duration", "Cost", "credits"):
        assert label in figures
    assert page.locator("audio#recording").get_attribute("src") == f"/api/calls/{call_id}/audio"
    assert page.locator(".step").count() == 5
    assert page.locator("#sandbox-banner").inner_text().startswith("SIMULATED (sandbox)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "call-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "call-page-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways

    # Transferred to a person.
    with standing_still(page, server):
        place(page, server.url, "+15550100003")
    watch_to_the_end(page, "completed")
    assert "Yes" in page.locator(".figure", has_text="Human reached").inner_text()
    assert "after a transfer" in page.locator("#figures").inner_text()

    # Busy: the conversation steps are skipped and nothing was said.
    place(page, server.url, "+15550100004")
    watch_to_the_end(page, "busy", must_move=False)
    assert page.locator("#live-status").inner_text().startswith("Busy")
    assert page.locator('.step[data-step="in_progress"]').get_attribute("class").count("step-skipped") == 1
    assert "not answered" in page.locator("#transcript").inner_text()

    # Voicemail: answered by a greeting, and the verdict says it failed.
    with standing_still(page, server):
        place(page, server.url, "+15550100006")
    watch_to_the_end(page, "completed")
    assert page.locator("#verdict").inner_text() == "Not successful"
    assert "Voicemail detected" in page.locator("#transcript").inner_text()


def test_form_errors_are_words_next_to_the_button(server: AppServer, page: Any) -> None:
    page.goto(server.url + "/")
    number = page.get_by_label("Phone number to call")
    number.fill("+1555")
    status = page.locator("#number-status")
    assert status.inner_text() == E164_ERROR and number.get_attribute("aria-invalid") == "true"
    number.fill("+15550100500")
    assert status.inner_text() == "Valid number."
    page.get_by_role("button", name="Place the call").click()
    assert page.locator("#description-error").inner_text() == "Provide a business description first."
    assert page.evaluate("document.activeElement.id") == "description"

    # ElevenLabs answers HTTP 500: the reason in words, no JSON, and the page stays put.
    page.get_by_label("Business description").fill(BAKERY)
    page.get_by_role("button", name="Place the call").click()
    error = page.locator("#form-error")
    expect(page.locator("#form-error")).not_to_be_empty()
    text = error.inner_text()
    assert text.startswith("ElevenLabs could not place the call.") and "500" in text
    assert "{" not in text and '"' not in text
    assert page.url == server.url + "/"
    assert page.get_by_role("button", name="Place the call").is_enabled()

    # A page whose own check is out of date still gets the server's (same) message.
    def without_client_check(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace(r"^\+[1-9]\d{7,14}$", ".*"))

    page.route(server.url + "/", without_client_check)
    page.goto(server.url + "/")
    assert page.get_by_label("Business description").input_value() == BAKERY  # prefilled from the session
    page.get_by_label("Phone number to call").fill("555-0100")
    page.get_by_role("button", name="Place the call").click()
    expect(page.locator("#form-error")).not_to_be_empty()
    assert error.inner_text() == E164_ERROR


def test_history_lists_calls_and_links_to_them(server: AppServer, page: Any) -> None:
    call_id = place(page, server.url, "+15550100004")
    watch_to_the_end(page, "busy", must_move=False)
    page.get_by_role("link", name="History").click()
    row = page.locator(f'tr[data-call-id="{call_id}"]')
    assert "+15550100004" in row.inner_text() and "Busy" in row.inner_text()
    page.get_by_label("Status").select_option("busy")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"status=busy"))
    assert page.locator("tbody tr").count() == page.locator("tbody tr", has_text="Busy").count() >= 1
    page.get_by_label("Number").fill("+15550100004")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"number=%2B15550100004"))
    row.get_by_role("link").click()
    page.wait_for_url(f"{server.url}/calls/{call_id}")
    assert page.locator("h1").inner_text() == "Call to +15550100004"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url + "/calls")
    page.screenshot(path=str(ARTIFACTS / "history-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_keyboard_reaches_the_form_and_places_a_call(server: AppServer, page: Any) -> None:
    page.goto(server.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Business description").focus()
    page.keyboard.type(BAKERY)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "to_number"
    page.keyboard.type("+15550100001")
    with standing_still(page, server):
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/calls/\w+$"))
    watch_to_the_end(page, "completed")


def test_setup_panel_names_what_is_missing(browser: Any, tmp_path: Path) -> None:
    secret = "sk-do-not-show-this"
    settings = settings_for(None, tmp_path, elevenlabs_api_key=secret, workers=False)
    with AppServer(settings) as bare:
        tab = browser.new_page()
        tab.goto(bare.url + "/")
        missing = tab.locator("[data-setting]")
        assert missing.evaluate_all("items => items.map(i => i.dataset.setting)") == [
            "ELEVENLABS_AGENT_ID",
            "ELEVENLABS_AGENT_PHONE_NUMBER_ID",
        ]
        tab.wait_for_selector("#doctor:not([hx-get])")  # the doctor's findings loaded after the page
        assert tab.locator("#sandbox-banner").count() == 0
        assert secret not in tab.content()
        tab.get_by_label("Business description").fill(BAKERY)
        tab.get_by_label("Phone number to call").fill("+15550100001")
        tab.get_by_role("button", name="Place the call").click()
        expect(tab.locator("#form-error")).not_to_be_empty()
        text = tab.locator("#form-error").inner_text()
        assert text.startswith("callcheck is not set up to place calls yet.") and "ELEVENLABS_AGENT_ID" in text
        tab.close()


def test_api_docs_render_from_callcheck_alone(server: AppServer, page: Any) -> None:
    # Swagger UI is vendored: the page draws every route with no request leaving callcheck (no CDN).
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/call").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/runs").first).to_be_visible()
    assert requested and all(url.startswith(server.url) for url in requested), requested

"""The runs view in a real browser (Debian's chromium through Playwright) against a real server on the sandbox.

A suite mixing passing and failing scenarios is started, its page moves to "completed" without a reload and shows
each scenario's verdict, and a drill-down link opens the call page; a run started from a pasted suite is cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browsing import ARTIFACTS, BROWSER_MARKS, SLOW_MACHINE_MS, chromium, sandbox_app, watched_page
from tests.servers import AppServer

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = BROWSER_MARKS

MIXED_SUITE: dict[str, Any] = {
    "name": "pizza-line",
    "business": "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery.",
    "number": "+15550100001",
    "defaults": {"expect": [{"final_state": "completed"}]},
    "scenarios": [
        {"name": "order", "goal": "order a large pepperoni pizza", "expect": [{"outcome": "success"}]},
        {"name": "confused", "goal": "order a pizza", "number": "+15550100002", "expect": [{"outcome": "success"}]},
        {"name": "human", "goal": "order a pizza", "number": "+15550100003", "expect": [{"reached_human": False}]},
        {"name": "busy", "goal": "order a pizza", "number": "+15550100004", "expect": [{"final_state": "busy"}]},
        {"name": "no-answer", "goal": "order a pizza", "number": "+15550100005"},
    ],
}

# Runs before the page's own scripts: records each state the progress part showed, and marks the document, so a
# test can tell the state changed while the page itself was never reloaded.
WATCH_SCRIPT = """
window.__runStates = [];
window.__sameDocument = true;
document.addEventListener("DOMContentLoaded", () => {
  const record = () => {
    const part = document.getElementById("run-progress");
    const state = part && part.dataset.state;
    if (state && window.__runStates[window.__runStates.length - 1] !== state) window.__runStates.push(state);
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true});
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """Calls slowed (~3 s each) so the progress visibly moves."""
    with sandbox_app(tmp_path_factory.mktemp("runs"), 0.08) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_sync) as launched:
        yield launched


@pytest.fixture(autouse=True)
def clock_released(server: AppServer) -> Iterator[None]:
    """A test that fails while it holds the sandbox's clock leaves it running for the next."""
    yield
    assert server.sandbox_clock is not None
    server.sandbox_clock.release()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with watched_page(browser, WATCH_SCRIPT, 20_000) as tab:
        yield tab


def test_mixed_suite_moves_live_to_its_verdicts_and_drills_down(server: AppServer, page: Any) -> None:
    # The calls stand still until the page has shown the run running: a run left loose could end before a slow
    # page load, which would then show it completed at once.
    assert server.sandbox_clock is not None
    with server.sandbox_clock.held():
        started = httpx.post(f"{server.url}/api/runs", params={"concurrency": 5}, json=MIXED_SUITE, timeout=30)
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        navigations: list[str] = []
        page.goto(f"{server.url}/runs/{run_id}")
        page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
        assert page.locator("#run-progress").get_attribute("data-state") == "running"
        assert page.get_by_role("button", name="Cancel the run").is_visible()

    page.wait_for_selector('#run-progress[data-state="completed"]')
    assert navigations == [] and page.evaluate("window.__sameDocument") is True
    assert page.evaluate("window.__runStates") == ["running", "completed"]
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^Failed: 2 of 5 scenarios passed\."))
    assert page.locator("#run-progress").get_attribute("hx-trigger") is None  # polling stopped
    assert page.get_by_role("button", name="Cancel the run").count() == 0
    statuses = page.locator("#scenario-table tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.scenario, r.dataset.status])"
    )
    assert statuses == [["order", "pass"], ["confused", "fail"], ["human", "fail"], ["busy", "pass"],
                        ["no-answer", "fail"]]  # fmt: skip
    assert page.locator("#run-counts [data-count=done] .figure-value").inner_text() == "5"
    human = page.locator("details[data-run-result=human]")
    assert human.get_attribute("open") is not None  # a failed call is shown open
    assertion = human.locator("tr[data-kind=reached_human]")
    assert "Failed" in assertion.inner_text() and "reached_human: false" in assertion.inner_text()
    assert page.locator("details[data-run-result=order]").get_attribute("open") is None

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("details[data-run-result=order]").locator("summary").click()
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "run-page-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    page.set_viewport_size({"width": 1200, "height": 900})

    # Drill-down: the busy scenario's call (passed, so folded) opens its call page.
    busy = page.locator("details[data-run-result=busy]")
    busy.locator("summary").click()
    busy.get_by_role("link", name=re.compile("Open the call")).click()
    page.wait_for_url(re.compile(r"/calls/\w+$"))
    expect(page.locator("#timeline")).to_have_attribute("data-state", "busy")
    assert page.locator("h1").inner_text() == "Call to +15550100004"

    # The list links back to the run.
    page.get_by_role("link", name="Runs", exact=True).click()
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    assert "pizza-line" in row.inner_text() and "simulated" in row.inner_text()
    assert "2 of 5 scenarios passed" in row.inner_text()
    row.get_by_role("link", name="pizza-line").click()
    page.wait_for_url(f"{server.url}/runs/{run_id}")


PASTED = """\
name: long-run
business: We are Pizza Palace, a pizza restaurant.
number: "+15550100001"
scenarios:
  - name: order
    goal: order a pizza
    repeat: 6
    expect:
      - {expect_line}
"""


def test_pasted_suite_starts_a_run_that_can_be_cancelled(server: AppServer, page: Any) -> None:
    page.goto(f"{server.url}/runs")
    suite = page.get_by_label("Suite")
    suite.fill(PASTED.format(expect_line="outcom: success"))
    page.get_by_role("button", name="Start the run").click()
    error = page.locator("#run-form-error")
    expect(error).to_contain_text("The suite has 1 problem; no call was placed.")
    assert "scenarios[0].expect[0] (line 9): unknown assertion 'outcom'" in error.inner_text()
    assert "{" not in error.inner_text()
    assert page.url == f"{server.url}/runs"
    expect(suite).to_be_focused()  # the keyboard is back where the fix goes
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-list.png"), full_page=True)

    suite.fill(PASTED.format(expect_line="outcome: success"))
    expect(error).to_be_empty()  # editing clears the old error
    # Held until the cancel is asked for: the run is still running when the button is pressed, however slow the
    # page (six 3 s calls on the loose clock could all be placed, or even done, first).
    assert server.sandbox_clock is not None
    server.sandbox_clock.hold()
    page.get_by_role("button", name="Start the run").click()
    page.wait_for_url(re.compile(r"/runs/\w+$"))
    expect(page.locator("#run-progress")).to_have_attribute("data-state", "running")

    # The progress part is replaced every second: a focused call link keeps the focus across a replacement.
    link = page.locator("#run-progress a[href^='/calls/']").first
    expect(link).to_be_visible(timeout=SLOW_MACHINE_MS)
    href = link.get_attribute("href")
    link.focus()
    page.evaluate(
        """() => new Promise((done) => document.body.addEventListener("htmx:afterSettle", (event) => {
             if (event.target.id === "run-progress") done();
           }))"""
    )
    assert page.evaluate("document.activeElement.getAttribute('href')") == href

    page.get_by_role("button", name="Cancel the run").click()
    expect(page.locator("#run-status")).to_be_focused()
    expect(page.locator("#cancel-status")).to_have_text(re.compile(r"^Cancel requested: no new call will be placed\."))
    server.sandbox_clock.release()  # the calls in flight end; the run is then cancelled
    page.wait_for_selector('#run-progress[data-state="cancelled"]', timeout=SLOW_MACHINE_MS)
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^Cancelled: "))
    skipped = int(page.locator("#run-counts [data-count=skipped] .figure-value").inner_text())
    assert 1 <= skipped <= 5
    assert "(6 planned)" in page.locator("#scenario-table").inner_text()
    assert page.get_by_role("button", name="Cancel the run").count() == 0

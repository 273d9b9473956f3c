"""The monitors and trends pages in a real browser (Debian's chromium through Playwright) against a real server on
the sandbox: create a monitor from a pasted suite, see it fail, follow a chart point to its run, pause and resume it,
run it now once the line is fixed, and compare the two runs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.browsing import ARTIFACTS, BROWSER_MARKS, chromium, sandbox_app, watched_page
from tests.servers import AppServer

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = BROWSER_MARKS

FAILING_SUITE = """\
name: pizza-line
business: We are Pizza Palace, a pizza restaurant that takes orders.
number: "+15550100002"
scenarios:
  - name: order
    goal: order a large pepperoni pizza
    expect:
      - outcome: success
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with sandbox_app(tmp_path_factory.mktemp("monitors"), 0.02) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_sync) as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with watched_page(browser, "window.__monitorsTest = true;", 20_000) as tab:
        yield tab


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def finished_runs(server: AppServer, name: str) -> list[dict[str, Any]]:
    runs = httpx.get(f"{server.url}/api/monitors/{name}", timeout=10).json()["runs"]
    return [r for r in runs if r["state"] == "completed"]


def test_create_watch_pause_and_compare_a_monitor(server: AppServer, page: Any) -> None:
    page.goto(f"{server.url}/monitors")
    expect(page.get_by_role("link", name="Monitors", exact=True)).to_have_attribute("aria-current", "page")
    expect(page.locator("#no-monitors")).to_be_visible()

    # A period under 10 s is refused with the server's own words, nothing created.
    page.locator("#monitor-suite").fill(FAILING_SUITE)
    page.locator("#monitor-name").fill("pizza")
    page.locator("#monitor-every").fill("5s")
    page.get_by_role("button", name="Create the monitor").click()
    expect(page.locator("#monitor-form-error")).to_contain_text("at least 10 s")
    assert httpx.get(f"{server.url}/api/monitors").json() == {"monitors": []}

    page.locator("#monitor-every").fill("1h")
    page.get_by_role("button", name="Create the monitor").click()
    page.wait_for_url(f"{server.url}/monitors/pizza")
    expect(page.locator("h1")).to_have_text("pizza")
    wait_for(lambda: finished_runs(server, "pizza"), "the first run")
    wait_for(lambda: httpx.get(f"{server.url}/api/monitors/pizza").json()["status"] == "failing", "failing")
    page.reload()
    expect(page.locator("#monitor-status")).to_have_text("failing")
    expect(page.locator("#monitor-badge")).to_have_attribute("src", "/badge/monitors/pizza.svg")
    assert page.locator("#monitor-badge").evaluate("img => img.naturalWidth") > 0  # the badge loaded

    # Trends: four charts overall (and per scenario), each point a link to its run.
    expect(page.locator("#overall-charts svg.chart")).to_have_count(4)
    expect(page.locator("details.scenario-trends svg.chart")).to_have_count(4)
    [first_run] = finished_runs(server, "pizza")
    point = page.locator("#overall-charts #overall-pass a.chart-point").first
    expect(point).to_have_attribute("data-run-id", first_run["id"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "monitor-page.png"), full_page=True)
    point.locator("circle").click()
    page.wait_for_url(f"{server.url}/runs/{first_run['id']}")
    expect(page.locator("#run-progress")).to_have_attribute("data-state", "completed")
    page.go_back()
    page.wait_for_url(f"{server.url}/monitors/pizza")

    # Pause, then resume, from the page.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#monitor-status")).to_have_text("paused")
    assert httpx.get(f"{server.url}/api/monitors/pizza").json()["paused"] is True
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#monitor-status")).to_have_text("failing")

    # The line is fixed; run it now from the page, then compare the two runs.
    httpx.patch(f"{server.url}/api/monitors/pizza", json={"suite": FAILING_SUITE.replace("0002", "0001")})
    page.get_by_role("button", name="Run now").click()
    wait_for(lambda: len(finished_runs(server, "pizza")) == 2, "the second run")
    wait_for(lambda: httpx.get(f"{server.url}/api/monitors/pizza").json()["status"] == "passing", "passing")
    page.reload()
    expect(page.locator("#monitor-status")).to_have_text("passing")
    expect(page.locator("#overall-pass a.chart-point")).to_have_count(2)
    page.get_by_role("button", name="Compare A with B").click()
    page.wait_for_url(re.compile(r"/compare\?(a|b)=\w+&(a|b)=\w+$"))
    expect(page.locator("li.flipped[data-scenario=order]")).to_have_text("order: fail → pass")
    expect(page.locator("#compare-figures tr[data-figure=pass_rate] td").nth(0)).to_have_text("0%")
    expect(page.locator("#compare-figures tr[data-figure=pass_rate] td").nth(1)).to_have_text("100%")
    expect(page.locator("#compare-figures tr[data-figure=pass_rate] td").nth(2)).to_have_text("+100 pts")
    page.screenshot(path=str(ARTIFACTS / "compare-page.png"), full_page=True)

    # The list shows the monitor and its status.
    page.get_by_role("link", name="Monitors", exact=True).click()
    row = page.locator("tr[data-monitor=pizza]")
    expect(row).to_have_attribute("data-status", "passing")
    assert "every 1h" in row.inner_text() and "24" in row.inner_text()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/monitors/pizza")
    page.screenshot(path=str(ARTIFACTS / "monitor-page-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways

"""A newcomer's first hour, in Chromium at desktop size and at a 390 px phone: the page and the HTML report.

Each test is one stumble of issue 10, fixed: keypad presses as a sequence, a start form that never contradicts
itself, a history table that fits, a call page whose conversation starts after "In progress" and whose every step
has a time, plain wording, run rows that look expandable, and a report that opens on its failures.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.assertions import CallEvidence, offline_verdict
from callcheck.domain.evidence import Analysis, CallFacts, Turn
from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import E164_ERROR
from callcheck.domain.suite import load_suite
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.providers.elevenlabs.sandbox.config import MAGIC_NUMBERS
from callcheck.reports import build_report, render_html, run_result
from tests.browsing import ARTIFACTS, BROWSER_MARKS, chromium, sandbox_app, watched_page
from tests.conftest import settings_for
from tests.servers import AppServer

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = BROWSER_MARKS

BAKERY = "Rosie's Bakery, a neighbourhood bakery that takes orders for birthday cakes by phone."
PHONE = {"width": 390, "height": 844}

# Records, on every change of the page, the state the timeline shows and how many turns the conversation shows.
WATCH_SCRIPT = """
window.__seen = [];
document.addEventListener("DOMContentLoaded", () => {
  const record = () => {
    const timeline = document.getElementById("timeline");
    if (!timeline) return;
    const entry = timeline.dataset.state + ":" + document.querySelectorAll(".bubble").length;
    if (window.__seen[window.__seen.length - 1] !== entry) window.__seen.push(entry);
  };
  record();
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
});
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with sandbox_app(tmp_path_factory.mktemp("firsthour"), 0.08) as app_server:
        yield app_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_sync) as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with watched_page(browser, WATCH_SCRIPT, 20_000) as tab:
        yield tab


def place(server: AppServer, number: str, scenario: str = "order a birthday cake") -> str:
    answer = httpx.post(
        f"{server.url}/api/call", json={"to_number": number, "business_description": BAKERY, "scenario": scenario}
    )
    assert answer.status_code == 200, answer.text
    call_id: str = answer.json()["id"]
    return call_id


def fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_keypad_presses_read_as_a_sequence(server: AppServer, page: Any) -> None:
    call_id = place(server, "+15550100008")  # the IVR dead end: the caller presses 2, then 0
    page.goto(f"{server.url}/calls/{call_id}")
    page.wait_for_selector('#timeline[data-state="completed"]')
    keypad = page.locator(".figure", has_text="Keypad")
    expect(keypad.locator(".figure-value")).to_have_text("2, 0")
    assert [c.inner_text() for c in page.locator(".chip-keypad").all()] == ["Pressed 2", "Pressed 0"]
    page.set_viewport_size(PHONE)
    expect(keypad.locator(".figure-value")).to_have_text("2, 0")
    fits(page, 390)


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE])
def test_the_start_form_never_says_valid_and_invalid_at_once(
    server: AppServer, page: Any, viewport: dict[str, int]
) -> None:
    page.set_viewport_size(viewport)
    page.goto(server.url + "/")
    page.get_by_label("Business description").fill(BAKERY)
    page.get_by_label("Phone number to call").fill("+1555")
    page.get_by_role("button", name="Place the call").click()
    expect(page.locator("#form-error")).to_have_text(E164_ERROR)
    page.locator(".sandbox-numbers summary").click()
    page.locator('[data-fill-number="+15550100001"]').click()
    expect(page.locator("#number-status")).to_have_text("Valid number.")
    expect(page.locator("#form-error")).to_be_empty()
    assert E164_ERROR not in page.locator("#start-form").inner_text()
    # Every magic number of the sandbox is offered, the no-answer, 429 and 200 ones included.
    offered = page.locator("[data-fill-number]").evaluate_all("items => items.map(i => i.dataset.fillNumber)")
    assert set(MAGIC_NUMBERS) <= set(offered), sorted(set(MAGIC_NUMBERS) - set(offered))
    fits(page, viewport["width"])


def test_the_history_fits_at_1280_with_the_time_on_one_line(server: AppServer, page: Any) -> None:
    long_scenario = "order a three-tier birthday cake with " + "lemon and raspberry layers, " * 12
    call_id = place(server, "+15550100004", long_scenario)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server.url}/calls")
    row = page.locator(f'tr[data-call-id="{call_id}"]')
    expect(row).to_be_visible()
    table = page.locator("#calls-table")
    table_width = table.evaluate("t => t.getBoundingClientRect().width")
    column = page.locator("main").evaluate("m => m.clientWidth")
    assert table.evaluate("t => t.scrollWidth") <= table_width + 1 and table_width <= column
    assert row.locator(".time-cell a").evaluate("a => a.getClientRects().length") == 1  # one line, not four
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "history-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    fits(page, 390)


def test_the_live_call_page_talks_after_in_progress_and_times_every_step(server: AppServer, page: Any) -> None:
    call_id = place(server, "+15550100001")
    page.goto(f"{server.url}/calls/{call_id}")
    page.wait_for_selector('#timeline[data-state="completed"]')
    expect(page.locator("#call")).to_have_attribute("data-live", "false")
    seen = page.evaluate("window.__seen")
    early = [entry for entry in seen if entry.split(":")[0] in ("queued", "dialing", "ringing")]
    assert all(entry.endswith(":0") for entry in early), seen  # no words before the call is in progress
    for step in ("dialing", "ringing", "in_progress", "processing", "completed"):
        when = page.locator(f'.step[data-step="{step}"] .step-when').inner_text()
        assert re.fullmatch(r"(by )?\+\d+(\.\d)? s|(by )?\+\d+:\d\d", when), (step, when)
    # Collected data words a boolean as the journey figures do.
    page.locator(".analysis-details summary").click()
    data = page.locator("ul.data").inner_text()
    assert "Reached human: No" in data and "True" not in data and "False" not in data
    page.set_viewport_size(PHONE)
    fits(page, 390)


def test_a_refused_call_was_never_placed_and_a_not_success_has_no_200(server: AppServer, page: Any) -> None:
    for number, said in (("+15550100500", "(500)"), ("+15550100200", "success: false")):
        refused = httpx.post(f"{server.url}/api/call", json={"to_number": number, "business_description": BAKERY})
        assert refused.status_code == 502 and said in refused.json()["error"]
        assert "(200)" not in refused.json()["error"]
        latest = httpx.get(f"{server.url}/api/calls", params={"number": number}).json()["calls"][0]
        page.goto(f"{server.url}/calls/{latest['id']}")
        transcript = page.locator("#transcript").inner_text()
        assert "the call was never placed" in transcript and "not answered" not in transcript
        assert "(200)" not in page.locator("#call-error").inner_text()


def test_the_setup_panel_names_each_setting_once(browser: Any, tmp_path: Path) -> None:
    with AppServer(settings_for(None, tmp_path, workers=False)) as bare:
        tab = browser.new_page(viewport=PHONE)
        tab.goto(bare.url + "/")
        for item in tab.locator("[data-setting]").all():
            name = item.get_attribute("data-setting")
            said = item.inner_text().splitlines()[0]  # the line itself; the fix under it may name it again
            assert said == f"{name} is not set.", item.inner_text()
        fits(tab, 390)
        tab.close()


def test_run_rows_show_a_disclosure_marker(server: AppServer, page: Any) -> None:
    suite = {
        "business": BAKERY,
        "number": "+15550100001",
        "scenarios": [
            {"name": "cake", "goal": "order a cake", "expect": [{"outcome": "success"}]},
            {"name": "busy", "goal": "order a cake", "number": "+15550100004", "expect": [{"outcome": "success"}]},
        ],
    }
    started = httpx.post(f"{server.url}/api/runs", params={"concurrency": 2}, json=suite, timeout=30)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    for viewport in ({"width": 1280, "height": 900}, PHONE):
        page.set_viewport_size(viewport)
        page.goto(f"{server.url}/runs/{run_id}")
        rows = page.locator("details.run-result")
        expect(rows).to_have_count(2, timeout=60_000)
        for row in rows.all():
            summary = row.locator("summary")
            marker = summary.evaluate("s => getComputedStyle(s, '::before').content")
            assert "▸" in marker, marker
            turned = summary.evaluate("s => getComputedStyle(s, '::before').transform")
            assert (turned != "none") == (row.get_attribute("open") is not None)
        fits(page, viewport["width"])


# -- the HTML report ---------------------------------------------------------------------------------------------

REPORT_SUITE = """\
name: bakery-line
business: Rosie's Bakery takes cake orders by phone.
number: "+15550100001"
scenarios:
  - name: order
    goal: order a birthday cake
    repeat: 5
    required_pass_rate: 0.8
    expect:
      - outcome: success
  - name: busy-line
    goal: order a birthday cake
    number: "+15550100004"
    expect:
      - final_state: completed
"""


def report_html() -> str:
    suite = load_suite(REPORT_SUITE, "bakery.yaml")
    results = []
    for planned in suite.planned_calls():
        if planned.scenario == "busy-line":
            evidence = CallEvidence(state=CallState.BUSY, call_id="busy", facts=CallFacts(call_result="busy"))
        else:  # five repeats of exactly the same duration and first response: five dots, not one
            evidence = CallEvidence(
                state=CallState.COMPLETED,
                call_id=f"c{planned.repeat}",
                turns=[Turn(speaker="business", text="Rosie's, hello", time_in_call_secs=2.0)],
                analysis=Analysis(call_successful="success" if planned.repeat != 3 else "failure"),
                facts=CallFacts(duration_secs=40.0, call_result="answered"),
            )
        results.append(run_result(planned, evidence, offline_verdict(evidence, planned.expectations), simulated=True))
    started = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
    report = build_report(suite, results, started_at=started, finished_at=datetime(2025, 1, 2, 10, 4, 43, tzinfo=UTC))
    return render_html(report)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report_html(), encoding="utf-8")
    return path


def test_the_report_opens_on_its_failures_with_readable_times(browser: Any, report_file: Path) -> None:
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.goto(report_file.as_uri())
    failing = tab.locator("details[data-status]:not([data-status='pass'])")
    assert failing.count() == 2  # order#3 and busy-line
    for item in failing.all():
        assert item.get_attribute("open") is not None
        expect(item.locator("table")).to_be_visible()  # the reason is in view without a click
    for item in tab.locator("details[data-status='pass']").all():
        assert item.get_attribute("open") is None
    text = tab.locator("body").inner_text()
    assert "Started 2025-01-02 10:00:00 UTC, finished 2025-01-02 10:04:43 UTC (4 min 43 s)." in text
    assert "T10:00:00" not in text
    tab.close()


def test_the_report_charts_fill_their_column_and_spread_equal_values(browser: Any, report_file: Path) -> None:
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.goto(report_file.as_uri())
    for figure in tab.locator(".charts figure").all():
        svg = figure.locator("svg")
        assert svg.evaluate("s => s.getBoundingClientRect().width") >= 0.98 * figure.evaluate("f => f.clientWidth")
    rate = tab.locator(".charts svg").first
    right = rate.evaluate("s => s.getBoundingClientRect().right")
    hundred = rate.locator("text", has_text="100%")
    assert hundred.evaluate("t => t.getBoundingClientRect().right") <= right  # never clipped
    assert hundred.evaluate("t => t.getBoundingClientRect().height") >= 12  # readable, not shrunk
    duration = tab.locator(".charts svg").nth(1)
    dots = duration.locator("circle").evaluate_all("cs => cs.map(c => [c.getAttribute('cx'), c.getAttribute('cy')])")
    order_dots = [tuple(d) for d in dots][:5]
    assert len(set(order_dots)) == 5, dots  # five equal durations, five distinct dots
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "report-desktop.png"), full_page=True)
    tab.close()


def test_the_report_fits_a_phone(browser: Any, report_file: Path) -> None:
    tab = browser.new_page(viewport=PHONE)
    tab.goto(report_file.as_uri())
    fits(tab, 390)
    for label in ("Required", "Status"):
        cells = tab.locator(f'#scenarios td[data-label="{label}"]')
        assert cells.count() == 2
        for cell in cells.all():
            box = cell.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (label, box)
            expect(cell).to_be_visible()
    tab.screenshot(path=str(ARTIFACTS / "report-phone.png"), full_page=True)
    tab.close()


def test_optional_settings_left_out_are_worth_knowing_not_problems(
    browser: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The README's minimal configuration: the three required settings, no webhook secret, no public URL.
    with AppServer(settings_for(sandbox, tmp_path, workers=False)) as minimal:
        tab = browser.new_page(viewport=PHONE)
        tab.goto(minimal.url + "/")
        tab.wait_for_selector("#doctor:not([hx-get])")
        assert tab.locator("#doctor .check-missing").count() == 0  # nothing to fix
        warned = tab.locator("#doctor .check-warning")
        assert warned.evaluate_all("items => items.map(i => i.dataset.check)") == ["webhook_secret", "public_url"]
        assert all("calls are polled" in text for text in warned.all_inner_texts())
        fits(tab, 390)
        tab.close()

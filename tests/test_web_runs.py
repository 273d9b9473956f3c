"""The runs view rendered in-process: list, live progress part, per-scenario report with drill-down, escaping, 404s.

What a person sees move in a real browser is in test_web_runs_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.web.runs import percent, run_sentence
from tests.conftest import settings_for
from tests.test_runs_api import wait_run
from tests.test_web import EVIL

SUITE: dict[str, Any] = {
    "name": "pizza " + EVIL,
    "business": "We are Pizza Palace " + EVIL,
    "number": "+15550100001",
    "defaults": {"expect": [{"final_state": "completed"}]},
    "scenarios": [
        {"name": "order " + EVIL, "goal": "order a pizza " + EVIL, "repeat": 2, "expect": [{"outcome": "success"}]},
        {"name": "busy", "goal": "order a pizza", "number": "+15550100004"},
        {"name": "human", "goal": "order a pizza", "number": "+15550100003", "expect": [{"reached_human": False}]},
    ],
}


@pytest.fixture
async def web(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


def section(html: str, marker: str) -> str:
    """The HTML from `marker` to the end of its element's panel (roughly: up to the next panel)."""
    start = html.index(marker)
    end = html.find('<section class="panel', start + len(marker))
    return html[start : end if end != -1 else len(html)]


async def test_finished_run_shows_each_scenario_its_assertions_and_links_to_calls(web: httpx.AsyncClient) -> None:
    started = await web.post("/api/runs", params={"concurrency": 4}, json=SUITE)
    assert started.status_code == 202, started.text
    run = await wait_run(web, started.json()["id"])
    assert run["state"] == "completed"

    response = await web.get(f"/runs/{run['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    # Nothing the suite said reaches the page as markup.
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "order &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    # Finished: the progress part no longer polls, and there is nothing to cancel.
    assert "hx-trigger" not in html and 'id="cancel-run"' not in html
    assert 'data-terminal="true"' in html
    assert "Failed: 1 of 3 scenarios passed." in html

    rows = dict(re.findall(r'<tr data-scenario="([^"]*)" data-status="(\w+)">', html))
    assert rows == {"order &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;": "pass",
                    "busy": "fail", "human": "fail"}  # fmt: skip
    order = section(html, 'id="scenario-table"')
    assert "2 of 2" in order and "100%" in order and "(34%\u2013100%)" in order  # Wilson 95% for 2/2

    # Each call of a scenario, with its assertions' status and evidence, links to the call page.
    busy = section(html, 'id="scenario-2"')
    assert 'data-run-result="busy" data-status="fail" open' in busy
    assert '<tr data-kind="final_state" data-status="fail">' in busy
    assert "final_state: completed" in busy and "Busy" in busy
    call_ids = [item["call_id"] for item in run["items"]]
    for call_id in call_ids:
        assert f'href="/calls/{call_id}"' in html
    assert (await web.get(f"/calls/{call_ids[0]}")).status_code == 200

    # The list: name, state and summary, linking to the run (the simulated badge: test_web_runs_browser.py).
    listing = (await web.get("/runs")).text
    assert f'href="/runs/{run["id"]}"' in listing
    assert "pizza &lt;script&gt;" in listing and "<script>alert" not in listing
    assert "1 of 3 scenarios passed" in listing and ">Completed<" in listing
    assert '<a href="/runs" aria-current="page">Runs</a>' in listing


async def test_running_run_polls_its_progress_part_until_it_ends(web: httpx.AsyncClient) -> None:
    suite = {**SUITE, "scenarios": [{"name": "slow", "goal": "order a pizza", "repeat": 3}]}
    started = (await web.post("/api/runs", params={"rate": 600}, json=suite)).json()
    page = await web.get(f"/runs/{started['id']}")
    html = page.text
    assert "3 calls planned" in html and "at most 1 at once, 600 a minute" in html
    if 'data-terminal="false"' in html:  # nearly always: the first call is not over yet
        assert f'hx-get="/runs/{started["id"]}/parts/progress"' in html
        assert 'hx-trigger="every 1s, cc:run from:body"' in html
        assert 'id="cancel-run"' in html and 'id="run-items"' in html
    await wait_run(web, started["id"])
    part = await web.get(f"/runs/{started['id']}/parts/progress")
    assert part.status_code == 200
    assert part.text.lstrip().startswith('<div id="run-progress"')
    assert "hx-trigger" not in part.text and "<html" not in part.text
    assert 'data-state="completed"' in part.text and "Passed: every scenario" in part.text


async def test_unknown_run_is_a_page_not_json(web: httpx.AsyncClient) -> None:
    for path in ("/runs/nope", "/runs/nope/parts/progress"):
        response = await web.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in response.text
    assert "No runs yet" in (await web.get("/runs")).text


async def test_runs_are_listed_a_page_at_a_time(web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = {"name": "s", "goal": "g", "expect": [{"final_state": "busy"}]}
    suite = {"business": "We are Pizza Palace.", "number": "+15550100004", "scenarios": [scenario]}
    started = [(await web.post("/api/runs", json={**suite, "name": f"run-{n}"})).json()["id"] for n in range(5)]
    for run_id in started:
        await wait_run(web, run_id)

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        listing = (await web.get("/api/runs", params=params)).json()
        assert len(listing["runs"]) <= 2
        seen += [r["id"] for r in listing["runs"]]
        cursor = listing["next_cursor"]
        if cursor is None:
            break
    assert seen == started[::-1]  # newest first, each once
    bad = await web.get("/api/runs", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json() == {"error": "Invalid cursor."}

    monkeypatch.setattr("callcheck.web.runs.RUNS_PAGE_SIZE", 3)
    first = (await web.get("/runs")).text
    assert [f"run-{n}" for n in (4, 3, 2)] == re.findall(r">(run-\d)</a>", first)
    older = re.search(r'<a rel="next" href="(/runs\?cursor=[^"]+)">Older runs</a>', first)
    assert older, first
    second = (await web.get(older.group(1))).text
    assert re.findall(r">(run-\d)</a>", second) == ["run-1", "run-0"]
    assert 'rel="next"' not in second and '<a href="/runs">Newest runs</a>' in second
    # A stale or edited link shows the newest runs, not an error page.
    stale = await web.get("/runs", params={"cursor": "garbage"})
    assert stale.status_code == 200 and re.findall(r">(run-\d)</a>", stale.text)[0] == "run-4"
    assert "This page link is no longer valid; showing the newest runs instead." in stale.text
    assert "no longer valid" not in first


async def test_pasted_yaml_starts_a_run_and_problems_come_back_by_path_and_line(web: httpx.AsyncClient) -> None:
    yaml_suite = (
        "business: We are Pizza Palace.\n"
        'number: "+15550100001"\n'
        "scenarios:\n"
        "  - name: order\n"
        "    goal: order a pizza\n"
        "    expect:\n"
        "      - final_state: completed\n"
    )
    started = await web.post("/runs/start", json={"suite": yaml_suite, "concurrency": "2"})
    assert started.status_code == 202, started.text
    run = await wait_run(web, started.json()["id"])
    assert run["state"] == "completed" and run["concurrency"] == 2 and run["name"] == "We are Pizza Palace"
    assert started.json()["url"] == f"/runs/{run['id']}"

    broken = yaml_suite + "      - outcom: success\n"
    refused = await web.post("/runs/start", json={"suite": broken})
    assert refused.status_code == 400
    body = refused.json()
    assert body["error"] == "The suite has 1 problem; no call was placed."
    assert body["problems"][0].startswith("scenarios[0].expect[1] (line 8): unknown assertion 'outcom'")

    for payload, message in (
        ({"suite": "  "}, "Paste a suite (YAML or JSON) first."),
        ({"suite": yaml_suite, "concurrency": 0}, "Concurrency must be a whole number from 1 to 50."),
    ):
        answer = await web.post("/runs/start", json=payload)
        assert answer.status_code == 400 and answer.json() == {"error": message}
    # A cross-site form (text/plain, no preflight) cannot start a run.
    forged = await web.post("/runs/start", content=b'{"suite": "x"}', headers={"Content-Type": "text/plain"})
    assert forged.status_code == 415
    assert len((await web.get("/api/runs")).json()["runs"]) == 1


def test_words_and_percentages() -> None:
    assert percent(None) == "—" and percent(2 / 3) == "67%" and percent(1.0) == "100%"
    run = {"state": "running", "counts": {"pending": 2, "active": 1, "done": 3, "skipped": 0}, "items": [{}] * 6}
    assert run_sentence(run, None) == "Running: 3 of 6 calls done, 1 under way, 2 waiting."
    assert (
        run_sentence({**run, "state": "failed", "error": "Boom."}, None)
        == "This run stopped before placing every call. Boom."
    )

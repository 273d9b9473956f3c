"""`callcheck run` as a user runs it in CI: a subprocess against the sandbox, exit codes, reports, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import backend_env
from tests.fake_openai import FakeOpenAI
from tests.servers import outbound_calls, sandbox_env

pytestmark = pytest.mark.e2e  # every test here runs `callcheck` as a subprocess

SUITE = """\
business: We are Pizza Palace, a pizza restaurant that takes orders and handles delivery.
number: "+15550100001"
defaults:
  expect:
    - final_state: completed
scenarios:
  - name: order
    goal: order a large pepperoni pizza for delivery to 123 Main St
    repeat: 2
    expect:
      - outcome: success
  - name: {second_name}
    goal: order a pizza
    number: "{second_number}"
"""


def run_cli(
    tmp_path: Path, *args: str, timeout: float = 120, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
        "CALLCHECK_SANDBOX_TIME_SCALE": "0.02",
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
        **backend_env(),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "callcheck", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_all_passing_suite_exits_0_and_writes_valid_reports(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(second_name="ivr", second_number="+15550100007"))
    result = run_cli(
        tmp_path,
        "run",
        str(suite),
        "--sandbox",
        "--concurrency",
        "2",
        "--junit",
        "out/r.xml",
        "--json",
        "out/r.json",
        "--html",
        "out/r.html",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASSED")
    tree = ET.parse(tmp_path / "out" / "r.xml").getroot()
    cases = tree.findall(".//testcase")
    assert sorted(c.get("name", "") for c in cases) == ["ivr", "order", "order#2"]
    assert not tree.findall(".//failure")
    report = json.loads((tmp_path / "out" / "r.json").read_text())
    assert report["simulated"] is True
    assert {s["name"] for s in report["scenarios"]} == {"order", "ivr"}
    html = (tmp_path / "out" / "r.html").read_text()
    assert "<svg" in html and "order#2" in html
    assert "calls:" in result.stderr  # the progress display


def test_a_failing_scenario_exits_1_with_its_evidence(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(second_name="busy-line", second_number="+15550100004"))
    result = run_cli(tmp_path, "run", str(suite), "--sandbox", "--only", "busy-line", "--junit", "r.xml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "busy-line: final_state fail" in result.stdout
    failures = ET.parse(tmp_path / "r.xml").getroot().findall(".//failure")
    assert len(failures) == 1 and "busy" in (failures[0].text or "") + (failures[0].get("message") or "")


def test_malformed_suite_exits_2_before_any_call(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(SUITE.format(second_name="x", second_number="+15550100001").replace("outcome:", "outcom:"))
    result = run_cli(tmp_path, "run", str(suite), "--sandbox")
    assert result.returncode == 2
    assert "scenarios[0].expect[0] (line 11): unknown assertion 'outcom'" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started, nothing stored


def test_missing_settings_exit_2(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(second_name="x", second_number="+15550100001"))
    result = run_cli(tmp_path, "run", str(suite))
    assert result.returncode == 2
    assert "Missing required environment variables: ELEVENLABS_API_KEY" in result.stderr


def test_dry_run_lists_every_call_and_dials_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(second_name="busy-line", second_number="+15550100004"))
    result = run_cli(tmp_path, "run", str(suite), "--dry-run")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "3 calls would be placed:"
    assert "order#2: call +15550100001" in result.stdout and "busy-line: call +15550100004" in result.stdout


def test_ctrl_c_cancels_and_reports_calls_in_flight(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    # Each call rings 40 simulated seconds (0.8 s): Ctrl-C lands while the first is in flight.
    suite.write_text(
        "business: A pizza shop.\nnumber: '+15550110040'\nscenarios:\n"
        "  - name: slow\n    goal: order a pizza\n    repeat: 4\n    expect:\n      - final_state: completed\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
        "CALLCHECK_SANDBOX_TIME_SCALE": "0.02",
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
        **backend_env(),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "callcheck", "run", str(suite), "--sandbox", "--json", "r.json", "--junit", "r.xml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "1 active" in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 1, stdout + stderr
    assert "cancelling" in stderr and stdout.startswith("CANCELLED")
    # The one call that ran passed, but the summary does not read as a complete run.
    assert "slow: 1/1 passed (3 not run: cancelled)" in stdout
    report = json.loads((tmp_path / "r.json").read_text())
    runs = report["scenarios"][0]["runs"]
    assert report["cancelled"] is True
    assert [r["state"] for r in runs] == ["completed"]  # the call in flight was followed to its end
    assert [n["display_name"] for n in report["scenarios"][0]["not_run"]] == ["slow#2", "slow#3", "slow#4"]
    assert report["run_id"] and report["concurrency"] == 1
    junit = ET.parse(tmp_path / "r.xml").getroot()
    (testsuite,) = junit.findall("testsuite")
    assert (testsuite.get("tests"), testsuite.get("skipped")) == ("4", "3")
    skipped = {c.get("name"): c.find("skipped") for c in testsuite.findall("testcase")}
    assert skipped["slow"] is None
    for name in ("slow#2", "slow#3", "slow#4"):
        element = skipped[name]
        assert element is not None and element.get("message") == "run cancelled before this call was placed"


def test_suggest_writes_a_suite_that_runs_dry(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        "suggest",
        "--description",
        "We are a dental clinic booking appointments.",
        "--number",
        "+15550100001",
        "-o",
        "starter.yaml",
    )
    assert result.returncode == 0, result.stderr
    dry = run_cli(tmp_path, "run", "starter.yaml", "--dry-run")
    assert dry.returncode == 0 and "would be placed" in dry.stdout


def test_summary_gives_the_judges_reason_the_upstream_error_and_the_fields_left_out(
    tmp_path: Path, sandbox: SandboxServer, fake_openai: FakeOpenAI
) -> None:
    # The agent allows every override but the voice speed: the persona's speed is left out, and the run says so.
    patched = httpx.patch(
        f"{sandbox.url}/v1/convai/agents/{sandbox.config.agent_id}",
        headers={"xi-api-key": sandbox.config.api_key},
        json={"platform_settings": {"overrides": {"conversation_config_override": {"tts": {"speed": False}}}}},
    )
    assert patched.status_code == 200, patched.text
    fake_openai.answer('{"verdict": "fail", "reason": "The business never said when the pizza would be ready."}')
    (tmp_path / "suite.yaml").write_text(
        "business: A pizza shop.\nnumber: '+15550100001'\nscenarios:\n"
        "  - name: judged\n    goal: order a pizza\n    persona: {name: Maya, speed: 1.1}\n"
        "    expect:\n      - judge: The business said when the pizza would be ready.\n"
        "  - name: broken\n    goal: order a pizza\n    number: '+15550100500'\n"
        "    expect:\n      - final_state: completed\n"
    )
    env = {
        **sandbox_env(sandbox),
        "CALLCHECK_JUDGE_BASE_URL": fake_openai.url,
        "CALLCHECK_JUDGE_MODEL": "test-model",
    }
    result = run_cli(tmp_path, "run", "suite.yaml", "--junit", "r.xml", "--json", "r.json", extra_env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "judged: judge fail: The business never said when the pizza would be ready." in lines
    assert "judged: note: not sent (the agent does not allow overriding them): tts.speed" in lines
    assert (
        "broken: note: ElevenLabs API error (500): An internal error occurred while placing the call (simulated)."
        in lines
    )
    assert "broken: final_state fail: call state = failed" in lines
    # The call went out without the speed, and the reports say so too.
    sent = [
        r["json"]["conversation_initiation_client_data"]["conversation_config_override"]
        for r in outbound_calls(sandbox)
    ]
    # Both calls reached ElevenLabs (the broken one answered 500), the persona's name went out, its speed did not.
    assert len(sent) == 2 and all("speed" not in (override.get("tts") or {}) for override in sent)
    assert any("Maya" in override["agent"]["prompt"]["prompt"] for override in sent)
    report = json.loads((tmp_path / "r.json").read_text())
    judged = report["scenarios"][0]["runs"][0]
    assert judged["overrides_not_sent"] == ["tts.speed"]
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "r.xml").getroot().iter("testcase")}
    out = cases["judged"].findtext("system-out") or ""
    assert "note: not sent (the agent does not allow overriding them): tts.speed" in out.splitlines()

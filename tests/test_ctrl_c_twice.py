"""A second Ctrl-C during `callcheck run`: it stops waiting at once, still writes its reports, and says so plainly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import backend_env


def wait_for_line(process: subprocess.Popen[str], text: str, seen: list[str]) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"never saw {text!r}: {''.join(seen)}")


def test_second_ctrl_c_writes_the_reports_without_dbos_warnings(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    # Each call rings 400 simulated seconds (20 s here): both Ctrl-C land while the first call is in flight.
    suite.write_text(
        "business: A pizza shop.\nnumber: '+15550110400'\nscenarios:\n"
        "  - name: slow\n    goal: order a pizza\n    repeat: 3\n    expect:\n      - final_state: completed\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
        **backend_env(),
    }
    command = [sys.executable, "-m", "callcheck", "run", str(suite), "--sandbox", "--time-scale", "0.05"]
    process = subprocess.Popen(
        [*command, "--json", "r.json", "--junit", "r.xml", "--html", "r.html"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    wait_for_line(process, "1 active", seen)
    process.send_signal(signal.SIGINT)
    wait_for_line(process, "cancelling:", seen)
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=90)
    stderr = "".join(seen) + rest
    assert process.returncode == 2, stdout + stderr
    assert "stopping: not waiting for the calls in flight" in stderr
    assert "1 call still in flight: reported as they stood" in stderr
    assert "Asyncio task cancelled" not in stderr and "Traceback" not in stderr and "WARNING" not in stderr
    assert stdout.startswith("CANCELLED")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["cancelled"] is True
    (scenario,) = report["scenarios"]
    assert [r["state"] for r in scenario["runs"]] != ["completed"]  # reported as it stood, not waited for
    assert [n["display_name"] for n in scenario["not_run"]] == ["slow#2", "slow#3"]
    junit = ET.parse(tmp_path / "r.xml").getroot()
    assert junit.get("errors") != "0" or junit.get("failures") != "0"  # never green
    assert (tmp_path / "r.html").read_text().count("The run was cancelled.") == 1

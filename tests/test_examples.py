"""The shipped examples as a newcomer first runs them: pizza.yaml passes in the sandbox, its twin fails on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import backend_env

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def run_example(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
        **backend_env(),
    }
    return subprocess.run(
        [sys.executable, "-m", "callcheck", "run", str(EXAMPLES / name), "--sandbox", "--time-scale", "0.02", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_shipped_example_passes_in_the_sandbox(tmp_path: Path) -> None:
    result = run_example(tmp_path, "pizza.yaml", "--junit", "r.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("PASSED: pizza-palace (simulated)")
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("9", "0", "0")


def test_the_failing_example_fails_on_purpose_and_says_why(tmp_path: Path) -> None:
    result = run_example(tmp_path, "pizza-failing.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("FAILED: pizza-palace-failing-on-purpose (simulated)")
    for scenario in ("busy-line", "never-understood", "judged-by-an-llm"):
        assert f"FAIL  {scenario}: 0/1 passed" in out, out
    assert "final_state fail" in out and "judge not_evaluated" in out


def test_time_scale_needs_the_sandbox(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callcheck", "run", str(EXAMPLES / "pizza.yaml"), "--time-scale", "0.05"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CALLCHECK_DATA_DIR": str(tmp_path / "d")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "--time-scale only applies with --sandbox (a real call takes the time it takes)"

"""Schedules in real processes: `callcheck monitor add` writes to the database, a running `callcheck serve` picks the
change up without a restart, and a restarted server carries on with the schedule, never running a slot twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from tests.conftest import backend_env
from tests.servers import free_port, outbound_calls, sandbox_env, serve_process, wait_healthy

SUITE = """
name: pizza-line
business: We are Pizza Palace, a pizza restaurant that takes orders.
number: "+15550100001"
scenarios:
  - name: order
    goal: order a large pepperoni pizza
    expect:
      - final_state: completed
"""


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m callcheck ...` with exactly this environment (plus PATH)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env}
    return subprocess.run(
        [sys.executable, "-m", "callcheck", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def monitor(url: str, name: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/monitors/{name}", timeout=10)
    assert answer.status_code == 200, answer.text
    detail: dict[str, Any] = answer.json()
    return detail


def wait_for(check: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def finished(url: str, name: str, after_slot: float = 0) -> list[dict[str, Any]]:
    return [r for r in monitor(url, name)["runs"] if r["state"] == "completed" and r["slot"] > after_slot]


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


@pytest.mark.timeout(300)  # two server starts and three CLI processes, on a loaded machine
def test_schedules_survive_a_restart_and_cli_changes_reach_a_running_server(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    with SandboxServer(SandboxConfig(time_scale=0.02)) as sandbox:
        env = {
            **sandbox_env(sandbox),
            "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
            "CALLCHECK_SECRET_KEY": "monitor-restart-secret-0123456789-abcdef",
            "CALLCHECK_POLL_INITIAL_S": "0.1",
            "CALLCHECK_POLL_MAX_S": "0.3",
            "CALLCHECK_MONITOR_TICK_S": "0.2",
            **backend_env(),
        }
        added = cli(env, tmp_path, "monitor", "add", "suite.yaml", "--every", "10s", "--name", "line")
        assert added.returncode == 0, added.stderr
        assert "This schedule places up to 8,640 calls a day (8,640 runs of 1 call)." in added.stdout
        port = free_port()
        url = f"http://127.0.0.1:{port}"

        first = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=first)
            wait_for(lambda: finished(url, "line"), "the first run, started by the first server")
        finally:
            stop(first)

        second = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=second)
            second_up = time.time()
            # The schedule carries on after the restart: a slot that began once only the second server was up runs.
            # (Not "a slot after the stop less 10 s": the first server's own run can be that slot, and then the
            # second server need never have run one.)
            wait_for(lambda: finished(url, "line", second_up), "a run after the restart")
            # A monitor added by the CLI while the server runs is picked up without a restart.
            other = cli(env, tmp_path, "monitor", "add", "suite.yaml", "--every", "10s", "--name", "other")
            assert other.returncode == 0, other.stderr
            wait_for(lambda: finished(url, "other"), "the new monitor's first run")
            # So is a pause: once the other monitor has run a slot after it, the paused one has run none.
            paused = cli(env, tmp_path, "monitor", "pause", "line")
            assert paused.returncode == 0 and "paused" in paused.stdout, paused.stderr
            paused_at = time.time()
            wait_for(lambda: finished(url, "other", paused_at), "a slot after the pause", timeout=60)
            assert all(r["slot"] <= paused_at for r in monitor(url, "line")["runs"])
            assert monitor(url, "line")["badge"] == "paused"
            listed = httpx.get(f"{url}/api/monitors", timeout=10).json()["monitors"]
            assert {m["name"]: m["badge"] for m in listed} == {"line": "paused", "other": "passing"}
            # Each slot ran once (one run per monitor and slot, on the 10 s grid), and no call was dialed twice.
            for name in ("line", "other"):
                runs = monitor(url, name)["runs"]
                assert len({r["slot"] for r in runs}) == len(runs) >= (2 if name == "line" else 1)
                assert all(r["slot"] % 10 == 0 for r in runs)
        finally:
            stop(second)
        dialed = [r["json"]["conversation_initiation_client_data"]["user_id"] for r in outbound_calls(sandbox)]
        assert dialed and len(dialed) == len(set(dialed))

"""A killed `callcheck run` is never continued by the next, unrelated command: its run is cancelled.

The next `callcheck run` on the host finds the owner gone and cancels the run (none of its remaining calls is
placed); the next server takes it over, follows the calls it had dialed to their end, and the run reports why it
stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from callcheck.config import Settings
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer, SteppedClock
from tests.conftest import backend_env
from tests.servers import outbound_calls, sandbox_env

pytestmark = pytest.mark.e2e  # `callcheck run` subprocesses, one of them killed

SLOW = "+15550110040"  # rings 40 simulated seconds before answering (on a clock that moves only when told)
FAST = "+15550100001"


def dialed(sandbox: SandboxServer, number: str) -> int:
    """How many calls to `number` the sandbox placed: dial requests it has answered. Not merely received: the sandbox
    logs a request as it arrives and fixes the conversation's start on its clock only when it handles it, so a clock
    moved in between left the call starting *after* the move, ringing for ever (the test hung, once in a few loaded
    runs)."""
    return sum(
        1
        for r in outbound_calls(sandbox)
        if (r["json"] or {}).get("to_number") == number and r["status_code"] is not None
    )


async def test_a_killed_run_is_adopted_cancelled_not_continued(tmp_path: Path, client_for: Any) -> None:
    # The sandbox's clock stands still until the test moves it: the killed run's two calls are surely in flight (no
    # third dialed) when it is killed, however slow the machine; on the real clock that was a 2-second margin.
    clock = SteppedClock()
    with SandboxServer(SandboxConfig(time_scale=1.0, clock=clock)) as sandbox:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
            "CALLCHECK_POLL_INITIAL_S": "0.1",
            "CALLCHECK_POLL_MAX_S": "0.3",
            **sandbox_env(sandbox),
            **backend_env(),
        }
        slow = tmp_path / "slow.yaml"
        slow.write_text(
            f"business: A pizza shop.\nnumber: '{SLOW}'\ndefaults:\n  expect:\n    - final_state: completed\n"
            "scenarios:\n  - name: slow\n    goal: order\n    repeat: 6\n"
        )
        fast = tmp_path / "fast.yaml"
        fast.write_text(
            f"business: A bakery.\nnumber: '{FAST}'\nscenarios:\n  - name: cake\n    goal: order a cake\n"
            "    expect:\n      - final_state: completed\n"
        )

        first = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "callcheck", "run", str(slow), "--concurrency", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 150  # a `callcheck run` can take a minute to start on a loaded machine
            while dialed(sandbox, SLOW) < 2 and time.monotonic() < deadline and first.poll() is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            _, problems = await asyncio.to_thread(first.communicate, timeout=30)
        assert dialed(sandbox, SLOW) == 2, problems

        # An unrelated suite, same data directory: it runs its own call and nothing of the killed run's. Once its
        # call is dialed the clock moves on: it (and the killed run's calls, upstream) end.
        second = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "callcheck", "run", str(fast)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while dialed(sandbox, FAST) < 1 and time.monotonic() < deadline and second.poll() is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            clock.advance(100)  # past the end of every call placed so far (the slow ones end 65 s after dialing)
            out, err = await asyncio.to_thread(second.communicate, timeout=120)
        finally:
            if second.poll() is None:
                second.kill()
                # Read to the end: closes its pipes (left open, they are reported against whichever test runs next).
                await asyncio.to_thread(second.communicate, timeout=10)
        assert second.returncode == 0, out + err
        assert dialed(sandbox, FAST) == 1
        assert dialed(sandbox, SLOW) == 2

        # Whoever opens the data next (here a server) sees the killed run finished cancelled, with its reason and
        # the two calls it had dialed followed to their end; still no third dial.
        settings = Settings(
            data_dir=tmp_path / "data",
            elevenlabs_api_key=SecretStr(sandbox.config.api_key),
            elevenlabs_agent_id=sandbox.config.agent_id,
            elevenlabs_agent_phone_number_id=sandbox.config.phone_number_id,
            elevenlabs_api_base=sandbox.url,
            poll_initial_s=0.1,
            poll_max_s=0.3,
        )
        if "CALLCHECK_DATABASE_URL" in env:
            settings = settings.model_copy(update={"database_url": env["CALLCHECK_DATABASE_URL"]})
        api = await client_for(settings)
        runs = (await api.get("/api/runs")).json()["runs"]
        killed = next(r for r in runs if r["name"] == "slow")
        deadline = time.monotonic() + 60
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = (await api.get(f"/api/runs/{killed['id']}")).json()
            if run["state"] in {"cancelled", "completed", "failed"} and run["report"]:
                break
            await asyncio.sleep(0.1)
        assert run["state"] == "cancelled", run
        assert "stopped before the run ended" in run["error"]
        states = [r["state"] for s in run["report"]["scenarios"] for r in s["runs"]]
        assert sorted(states) == ["completed", "completed"], states
        assert dialed(sandbox, SLOW) == 2

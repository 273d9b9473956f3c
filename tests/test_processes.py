"""Several processes on one PostgreSQL database: a suite run started on one process, that process `kill -9`ed at a
chosen moment, the survivor finishes the run — every call dialed exactly once, every result kept, the run's
concurrency cap never exceeded across both.

The moments are made, not hoped for: a gate between callcheck and the sandbox (tests/gate.py) holds the request at
the chosen point, the test waits until it is held, then kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import HeldClock, SandboxConfig, SandboxServer
from tests.conftest import fresh_postgres_database
from tests.gate import Gate
from tests.servers import OUTBOUND, free_port, outbound_calls, sandbox_env, wait_healthy

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.timeout(600)]

CONCURRENCY = 2
# Each call answers after 30 simulated seconds (about 1.5 s real at this time scale), then talks: long enough for
# calls to overlap, and to be in progress when a process is killed.
SUITE: dict[str, Any] = {
    "business": "A pizza shop.",
    "number": "+15550110030",
    "scenarios": [{"name": "order", "goal": "order a pizza", "repeat": 4, "expect": [{"final_state": "completed"}]}],
}
TERMINAL_RUN = {"completed", "cancelled", "failed"}


def _env(sandbox: SandboxServer, api_base: str, database: str, data: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(data),
        **sandbox_env(sandbox),
        "ELEVENLABS_API_BASE": api_base,
        "CALLCHECK_DATABASE_URL": database,
        "CALLCHECK_DATA_DIR": str(data),
        "CALLCHECK_SECRET_KEY": "test-secret-key-0123456789-abcdefghij",
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.5",
        "CALLCHECK_EXECUTOR_LEASE_S": "6",
    }


@contextmanager
def _process(cwd: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m callcheck <args>`, stopped (SIGTERM, then waited for) on the way out if still running."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(cwd / "output.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "callcheck", *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve(cwd: Path, env: dict[str, str], port: int, *extra: str) -> Any:
    return _process(cwd, env, "serve", "--port", str(port), "--log-level", "warning", *extra)


def _wait(what: str, check: Any, timeout: float = 120) -> Any:
    """Poll `check()` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {last})")


def _run(url: str, run_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{url}/api/runs/{run_id}", timeout=10).json()
    return answer


def _finished(url: str, run_id: str) -> dict[str, Any] | None:
    run = _run(url, run_id)
    return run if run["state"] in TERMINAL_RUN and run.get("report") is not None else None


def _peak_overlap(url: str, run: dict[str, Any]) -> int:
    """The most calls of the run alive at once, from their first and last state events (dialing → final)."""
    points: list[tuple[str, int]] = []
    for item in run["items"]:
        call = httpx.get(f"{url}/api/calls/{item['call_id']}", timeout=10).json()
        states = [e for e in call["events"] if e["kind"] == "state"]
        points += [(states[0]["at"], 1), (states[-1]["at"], -1)]
    active = peak = 0
    for _, delta in sorted(points, key=lambda p: (p[0], p[1])):
        active += delta
        peak = max(peak, active)
    return peak


def _assert_finished_exactly_once(sandbox: SandboxServer, url: str, run_id: str) -> None:
    run = _wait("the survivor finishing the run", lambda: _finished(url, run_id), timeout=180)
    assert run["state"] == "completed", run
    assert run["exit_code"] == 0, run["report"]
    assert run["counts"] == {"pending": 0, "active": 0, "done": 4, "skipped": 0}
    assert {i["call_state"] for i in run["items"]} == {"completed"}
    # Every planned call dialed exactly once: one outbound request per call id, and no other.
    dialed = [r["json"]["conversation_initiation_client_data"]["user_id"] for r in outbound_calls(sandbox)]
    assert sorted(dialed) == sorted(i["call_id"] for i in run["items"])
    # Every result kept: each call's transcript and verdict are in the report.
    results = [r for s in run["report"]["scenarios"] for r in s["runs"]]
    assert len(results) == 4 and all(r["verdict"]["passed"] for r in results)
    assert _peak_overlap(url, run) <= CONCURRENCY
    assert _peak_dialed_while_under_way(sandbox, url, run) <= CONCURRENCY


def _peak_dialed_while_under_way(sandbox: SandboxServer, url: str, run: dict[str, Any]) -> int:
    """The most calls under way when the sandbox received a dial, whichever process sent it: a call is under way from
    its dial as the sandbox logged it (the truth, even for a dial whose answer was lost) until callcheck recorded it
    final (no process may dial the next before that)."""
    dialed_at = {
        r["json"]["conversation_initiation_client_data"]["user_id"]: r["received_at"] for r in outbound_calls(sandbox)
    }
    spans = []
    for item in run["items"]:
        call = httpx.get(f"{url}/api/calls/{item['call_id']}", timeout=10).json()
        final = datetime.fromisoformat([e for e in call["events"] if e["kind"] == "state"][-1]["at"]).timestamp()
        spans.append((dialed_at[item["call_id"]], final))
    return max(sum(1 for start, end in spans if start <= dial < end) for dial, _ in spans)


def _start_run(url: str) -> str:
    created = httpx.post(f"{url}/api/runs", params={"concurrency": CONCURRENCY}, json=SUITE, timeout=30)
    assert created.status_code == 202, created.text
    run_id: str = created.json()["id"]
    return run_id


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def slow_clock() -> HeldClock:
    """The real clock of `slow_sandbox`, which a test holds while the calls must stay alive."""
    return HeldClock()


@pytest.fixture
def slow_sandbox(slow_clock: HeldClock) -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(time_scale=0.05, clock=slow_clock)) as server:
        yield server


def _calls_in_progress(url: str, run_id: str) -> bool:
    states = [i.get("call_state") for i in _run(url, run_id)["items"]]
    return sum(s in {"ringing", "in_progress"} for s in states) == CONCURRENCY


@pytest.mark.parametrize(
    "moment", ["before_any_call", "before_the_dial", "between_dial_and_answer", "while_calls_are_in_progress"]
)
def test_survivor_server_finishes_a_run_whose_server_was_killed(
    slow_sandbox: SandboxServer, tmp_path: Path, moment: str
) -> None:
    database = fresh_postgres_database()
    with Gate(slow_sandbox.url) as gate:
        rule = None
        if moment == "before_any_call":
            # The run is stored and its workflow reads the agent before its first dial: held there.
            agent = f"/v1/convai/agents/{slow_sandbox.config.agent_id}"
            rule = gate.hold("GET", agent, before=True, nth=2)
        elif moment != "while_calls_are_in_progress":
            # The first dial is held before it reaches ElevenLabs, or after ElevenLabs placed it (its answer lost).
            rule = gate.hold("POST", OUTBOUND, before=moment == "before_the_dial")
        port_a, port_b = free_port(), free_port()
        url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        # Only A goes through the gate, so the request held is A's; and each process runs one of the run's two slots
        # (CALLCHECK_RUN_CALLS_PER_PROCESS=1: DBOS hands the second slot to B), so A surely places calls.
        one_each = {"CALLCHECK_RUN_CALLS_PER_PROCESS": "1"}
        env_a = {**_env(slow_sandbox, gate.url, database, tmp_path / "a"), **one_each}
        env_b = {**_env(slow_sandbox, slow_sandbox.url, database, tmp_path / "b"), **one_each}
        with _serve(tmp_path / "a", env_a, port_a) as a, _serve(tmp_path / "b", env_b, port_b) as b:
            wait_healthy(url_a, timeout=240, process=a)
            wait_healthy(url_b, timeout=240, process=b)
            run_id = _start_run(url_a)
            if rule is not None:
                _wait("the gate holding A's request", rule.held.is_set)
            else:
                _wait("two calls in progress", lambda: _calls_in_progress(url_b, run_id))
            _kill(a)
            gate.release_all()
            _assert_finished_exactly_once(slow_sandbox, url_b, run_id)
            assert b.poll() is None
        log_b = (tmp_path / "b" / "output.log").read_text()
        assert "takes over executor server-" in log_b


def test_worker_finishes_a_run_whose_server_was_killed_with_calls_in_progress(tmp_path: Path) -> None:
    """Server A places the run's calls; a worker survives A; a server without workers answers for both."""
    # The sandbox's clock is held from the start of the run until A is killed: its first two calls ring until then,
    # however slow the processes are to see them. (On the loose clock a call lasted ~3 s, which a loaded machine
    # could outlast before any poll saw both calls alive: the wait below then never came true.)
    clock = HeldClock()
    with SandboxServer(SandboxConfig(time_scale=0.05, clock=clock)) as slow_sandbox:
        _worker_finishes_the_run(slow_sandbox, clock, tmp_path)


def _worker_finishes_the_run(slow_sandbox: SandboxServer, clock: HeldClock, tmp_path: Path) -> None:
    database = fresh_postgres_database()
    port_a, port_c = free_port(), free_port()
    url_a, url_c = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_c}"
    env_a = _env(slow_sandbox, slow_sandbox.url, database, tmp_path / "a")
    with (
        _serve(tmp_path / "a", env_a, port_a) as a,
        _process(tmp_path / "w", _env(slow_sandbox, slow_sandbox.url, database, tmp_path / "w"), "worker") as worker,
        _serve(tmp_path / "c", _env(slow_sandbox, slow_sandbox.url, database, tmp_path / "c"), port_c, "--no-workers"),
    ):
        wait_healthy(url_a, timeout=240, process=a)
        wait_healthy(url_c, timeout=240)
        clock.hold()
        run_id = _start_run(url_a)
        _wait("two calls in progress", lambda: _calls_in_progress(url_c, run_id))
        _kill(a)
        clock.release()
        _assert_finished_exactly_once(slow_sandbox, url_c, run_id)
        assert worker.poll() is None
    assert "takes over executor server-" in (tmp_path / "w" / "output.log").read_text()


SLOW = "+15550110040"  # answers after 40 simulated seconds
FAST = "+15550100001"


def _dialed(sandbox: SandboxServer, number: str) -> int:
    return sum(1 for r in outbound_calls(sandbox) if (r["json"] or {}).get("to_number") == number)


def _run_rows(database: str) -> dict[str, tuple[str, bool]]:
    """Each run's name -> (state, whether its report is stored), read straight from the database."""
    import sqlalchemy as sa

    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, state, report IS NOT NULL FROM runs")).all()
    finally:
        engine.dispose()
    return {name: (state, bool(reported)) for name, state, reported in rows}


@pytest.mark.parametrize("how", ["kill_9", "ctrl_c_twice"])
def test_the_next_callcheck_run_finishes_a_stopped_run(
    slow_sandbox: SandboxServer, slow_clock: HeldClock, tmp_path: Path, how: str
) -> None:
    """CI with a throwaway database and no server: a `callcheck run` killed (or interrupted twice) mid-run leaves
    dialed calls; the next `callcheck run` follows them to their end and stores the stopped run's report."""
    database = fresh_postgres_database()
    env = _env(slow_sandbox, slow_sandbox.url, database, tmp_path / "data")
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
    first_err = tmp_path / "first.err"
    # Held until the first run is stopped: its first two calls ring until then, so no third is dialed however slow
    # this test is to see two. (On the loose clock they ended in ~3 s, and a slow look could find a third.)
    slow_clock.hold()
    with open(first_err, "wb") as err:
        first = subprocess.Popen(
            [sys.executable, "-m", "callcheck", "run", str(slow), "--concurrency", "2"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait("two calls dialed", lambda: _dialed(slow_sandbox, SLOW) >= 2 or first.poll() is not None, 240)
        assert first.poll() is None, first_err.read_text()
        if how == "kill_9":
            first.send_signal(signal.SIGKILL)
        else:
            first.send_signal(signal.SIGINT)
            _wait("the first Ctrl-C answered", lambda: "cancelling" in first_err.read_text())
            first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        slow_clock.release()
    assert _dialed(slow_sandbox, SLOW) == 2
    if how == "kill_9":
        assert _run_rows(database)["slow"][0] in {"running", "cancelling"}
    else:
        # A second Ctrl-C stops waiting but judges the calls as they stand and stores the report itself (exit 2):
        # the run is never left "cancelling" for anyone.
        assert first.returncode == 2
        assert _run_rows(database)["slow"] == ("cancelled", True)

    second = subprocess.run(
        [sys.executable, "-m", "callcheck", "run", str(fast)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stdout + second.stderr
    if how == "kill_9":
        assert "finishing 1 run left by a stopped process" in second.stderr
    # DBOS's own log lines never reach the terminal.
    assert "dbos" not in second.stderr.lower(), second.stderr
    assert _dialed(slow_sandbox, FAST) == 1 and _dialed(slow_sandbox, SLOW) == 2
    assert _run_rows(database)["slow"] == ("cancelled", True)
    assert _run_rows(database)["fast"] == ("completed", True)


def test_a_webhook_on_a_server_without_workers_wakes_the_workflow_in_a_worker(tmp_path: Path) -> None:
    """The webhook lands on a server that runs no durable work; the worker following the call learns of the end
    through the database (its poller set far too slow to be what noticed), and its workflow goes on to fetch the
    recording."""
    database = fresh_postgres_database()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = SandboxConfig(time_scale=0.05, webhook_url=f"{url}/api/webhooks/elevenlabs", workspace_webhook=True)
    with SandboxServer(config) as sandbox:
        env = {
            **_env(sandbox, sandbox.url, database, tmp_path / "c"),
            "ELEVENLABS_WEBHOOK_SECRET": config.webhook_secret,
            # The poller's first sweep comes after 300 s: only the database can wake the workflow sooner.
            "CALLCHECK_POLL_INITIAL_S": "300",
            "CALLCHECK_POLL_MAX_S": "300",
        }
        worker_env = {**env, "CALLCHECK_DATA_DIR": str(tmp_path / "w"), "HOME": str(tmp_path / "w")}
        with (
            _serve(tmp_path / "c", env, port, "--no-workers") as server,
            _process(tmp_path / "w", worker_env, "worker") as worker,
        ):
            wait_healthy(url, timeout=240, process=server)
            _wait("the worker started", lambda: "running" in (tmp_path / "w" / "output.log").read_text(), 240)
            placed = httpx.post(
                f"{url}/api/call",
                json={"to_number": "+15550100001", "business_description": "A pizza shop.", "scenario": "order"},
                timeout=30,
            )
            assert placed.status_code == 200, placed.text
            call_id = placed.json()["id"]

            def kept_recording() -> dict[str, Any] | None:
                call: dict[str, Any] = httpx.get(f"{url}/api/calls/{call_id}", timeout=10).json()
                return call if call["state"] == "completed" and call["recording_url"] else None

            # Well under the poller's 300 s: the end came through the database.
            call = _wait("the worker's workflow fetching the recording", kept_recording, timeout=120)
            assert "webhook" in " ".join(e.get("detail") or "" for e in call["events"]).lower() or call["transcript"]
            assert worker.poll() is None
        assert len(outbound_calls(sandbox)) == 1


# -- a run's calls placed by whichever process has room -----------------------------------------------------------

SPREAD_CALLS = 8
SPREAD_CONCURRENCY = 4
PER_PROCESS = 2  # CALLCHECK_RUN_CALLS_PER_PROCESS: one process alone can never hold the run's cap


def _placers(database: str, run_id: str) -> dict[str, str]:
    """Each call of the run -> the role of the process that placed it (`calls.placed_by`, `executors.role`), read
    straight from the database."""
    import sqlalchemy as sa

    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT calls.id, calls.placed_by, executors.role FROM calls "
                    "LEFT JOIN executors ON executors.id = calls.placed_by WHERE calls.run_id = :run"
                ),
                {"run": run_id},
            ).all()
    finally:
        engine.dispose()
    return {call_id: f"{role}:{placed_by}" for call_id, placed_by, role in rows}


def _under_way(url: str, run_id: str, count: int) -> bool:
    states = [i.get("call_state") for i in _run(url, run_id)["items"]]
    return sum(s in {"ringing", "in_progress"} for s in states) == count


@pytest.mark.parametrize("second", ["server", "worker"])
def test_a_runs_calls_are_placed_by_every_process_with_room(tmp_path: Path, second: str) -> None:
    """A run started on server A, a second process (a server, or a `callcheck worker`) on the same database: each may
    place and follow at most PER_PROCESS calls at once, the run's cap is SPREAD_CONCURRENCY, so the run's calls are
    placed by both. With two servers the account-wide CALLCHECK_MAX_CONCURRENT_CALLS (3) is lower than the run's cap,
    and holds across both. The sandbox's clock is held until the run's places are full: its calls ring until then, so
    which process placed which is decided by the places, not by timing."""
    clock = HeldClock()
    account_cap = 3 if second == "server" else 0
    most = account_cap or SPREAD_CONCURRENCY
    suite = {**SUITE, "scenarios": [{**SUITE["scenarios"][0], "repeat": SPREAD_CALLS}]}
    with SandboxServer(SandboxConfig(time_scale=0.05, clock=clock)) as sandbox:
        database = fresh_postgres_database()
        port_a, port_b = free_port(), free_port()
        url_a = f"http://127.0.0.1:{port_a}"
        extra = {
            "CALLCHECK_RUN_CALLS_PER_PROCESS": str(PER_PROCESS),
            "CALLCHECK_MAX_CONCURRENT_CALLS": str(account_cap),
        }
        env_a = {**_env(sandbox, sandbox.url, database, tmp_path / "a"), **extra}
        env_b = {**_env(sandbox, sandbox.url, database, tmp_path / "b"), **extra}
        other = (
            _serve(tmp_path / "b", env_b, port_b) if second == "server" else _process(tmp_path / "b", env_b, "worker")
        )
        with _serve(tmp_path / "a", env_a, port_a) as a, other as b:
            wait_healthy(url_a, timeout=240, process=a)
            if second == "server":
                wait_healthy(f"http://127.0.0.1:{port_b}", timeout=240, process=b)
            else:
                _wait("the worker started", lambda: "running" in (tmp_path / "b" / "output.log").read_text(), 240)
            clock.hold()
            created = httpx.post(
                f"{url_a}/api/runs", params={"concurrency": SPREAD_CONCURRENCY}, json=suite, timeout=30
            )
            assert created.status_code == 202, created.text
            run_id = created.json()["id"]
            _wait(f"{most} calls under way", lambda: _under_way(url_a, run_id, most))
            # Full: no other call is dialed while these ring (the places are held by the database, across both).
            placers = _placers(database, run_id)
            assert len(placers) == most and len(outbound_calls(sandbox)) == most
            roles = {p.split(":")[0] for p in placers.values()}
            assert roles == ({"server"} if second == "server" else {"server", "worker"}), placers
            assert len(set(placers.values())) == 2, placers  # two processes, whatever their roles
            clock.release()
            run = _wait("the run finishing", lambda: _finished(url_a, run_id), timeout=240)
            assert a.poll() is None and b.poll() is None
            assert _peak_dialed_while_under_way(sandbox, url_a, run) <= most
        assert run["state"] == "completed" and run["exit_code"] == 0, run
        assert {i["call_state"] for i in run["items"]} == {"completed"}
        # Every call dialed exactly once, whichever process placed it.
        dialed = [r["json"]["conversation_initiation_client_data"]["user_id"] for r in outbound_calls(sandbox)]
        assert sorted(dialed) == sorted(i["call_id"] for i in run["items"])
        placers = _placers(database, run_id)
        assert len(placers) == SPREAD_CALLS and len(set(placers.values())) == 2, placers

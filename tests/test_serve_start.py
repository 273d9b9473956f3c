"""Starting `callcheck serve` as a newcomer does: where it listens, a quiet log, a taken port, --version and --help."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from callcheck import __version__
from callcheck.cli import app
from tests.conftest import backend_env
from tests.servers import free_port, serve_process, wait_healthy
from tests.waiting import wait_for_call_sync

runner = CliRunner()


def test_serve_says_where_it_listens_and_keeps_polling_out_of_the_log(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), "CALLCHECK_SANDBOX_TIME_SCALE": "0.05", **backend_env()}
    process = serve_process(env, port, tmp_path, "--sandbox", "--log-level", "info")
    try:
        wait_healthy(url, process=process)
        placed = httpx.post(f"{url}/api/call", json={"to_number": "+15550100001", "business_description": "A shop."})
        assert placed.status_code == 200, placed.text
        wait_for_call_sync(url, placed.json()["id"], {"completed"}, timeout=60)
        for _ in range(3):  # page views: the set-up panel's database check opened an Alembic context each time
            assert httpx.get(f"{url}/").status_code == 200
            assert httpx.get(f"{url}/parts/setup").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    log = (tmp_path / f"serve-{port}.log").read_text()
    banner = [line for line in log.splitlines() if line.startswith("callcheck is running on")]
    assert len(banner) == 1, log
    assert banner[0].startswith(f"callcheck is running on {url} (sandbox: simulated ElevenLabs, no real calls;")
    database = "PostgreSQL postgresql://postgres@127.0.0.1:5432/" if backend_env() else "SQLite "
    assert f"database: {database}" in banner[0]
    assert "HTTP Request:" not in log  # httpx's line for each poll of the call
    assert "Context impl" not in log and "alembic" not in log  # Alembic's lines for migrations and page views
    assert "/v1/convai" not in log  # the in-process sandbox's own access lines (callcheck polling it)
    # uvicorn's own lines are no longer silenced by the in-process sandbox's server: where it runs, its access log.
    assert f"Uvicorn running on {url}" in log and "GET /parts/setup" in log


def test_a_taken_port_is_one_line_and_exit_2_before_the_database_is_touched(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "callcheck", "serve", "--port", str(port)],
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CALLCHECK_DATA_DIR": str(data)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"port {port} on 127.0.0.1 is already in use (another callcheck serve?): stop it, or pick another port "
        "with --port"
    ], result.stderr
    assert "Errno" not in result.stderr + result.stdout
    assert not data.exists()  # checked before the data directory (cookie key, database) was touched


def test_version_option_and_command_agree() -> None:
    option = runner.invoke(app, ["--version"])
    command = runner.invoke(app, ["version"])
    assert option.exit_code == command.exit_code == 0
    assert option.output == command.output == f"{__version__}\n"


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (["serve"], ["--sandbox"]),
        (["run"], ["--dry-run", "--sandbox"]),
        (["doctor"], ["--json"]),
        (["agent", "setup"], ["--dry-run", "--create-webhook"]),
        (["sandbox"], ["--bare-agent"]),
        ([], ["--version"]),
    ],
)
def test_boolean_flags_are_shown_as_flags(command: list[str], flags: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for flag in [*flags, "--help"]:
        line = next(line for line in result.output.splitlines() if re.search(rf"{flag}\b", line))
        assert re.search(rf"{flag}\s+[A-Z]", line), line  # the flag, then straight its help: no value to give


def test_the_collector_is_paused_while_serve_builds_and_back_on_after_a_refusal_too() -> None:
    import gc

    from callcheck.cli.serve import collector_paused

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    try:
        with pytest.raises(RuntimeError), collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("a refusal")
        assert gc.isenabled() and gc.get_freeze_count() == frozen  # nothing frozen on the way out of a failed start
        built: list[list[int]] = [[] for _ in range(10)]  # lists: objects the collector tracks
        with collector_paused():
            assert not gc.isenabled()
        # What the start built is frozen: later collections no longer walk it.
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(built)
    finally:
        gc.unfreeze()

"""`callcheck --help` imports none of what the commands use (DBOS, SQLAlchemy, FastAPI): it stays quick to start.

What is checked is which modules a fresh interpreter has loaded, not how long it took (timings are bench/'s job).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("dbos", "sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic", "callcheck.jobs", "callcheck.app")

# Runs the real entry point in a fresh interpreter, then reports what got imported (main exits through SystemExit).
PROBE = """
import json, sys
sys.argv = ["callcheck", *ARGS]
from callcheck.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n=MODULES=" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*args: str, data_dir: Path | None = None) -> tuple[int, set[str], str]:
    """Run `callcheck ARGS` in a fresh interpreter: its exit code, the modules it imported, and its output."""
    probe = PROBE.replace("ARGS", repr(list(args)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLCHECK_", "ELEVENLABS_"))}
    if data_dir is not None:
        env["CALLCHECK_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    output, _, report = done.stdout.rpartition("\n=MODULES=")
    assert report, done.stderr
    found = json.loads(report)
    return found["code"], set(found["modules"]), output


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["serve", "--help"], ["monitor", "--help"], ["token", "--help"]]
)
def test_help_imports_no_database_durable_work_or_web_framework(args: list[str]) -> None:
    code, modules, output = loaded_by(*args)
    assert code == 0
    assert "Usage:" in output
    assert heavy_among(modules) == []


def test_help_still_lists_every_command() -> None:
    _, _, output = loaded_by("--help")
    for command in ("serve", "worker", "version", "agent", "doctor", "sandbox", "run", "suggest", "monitor", "token"):
        assert command in output, command


def test_the_probe_sees_heavy_imports_when_a_command_needs_them(tmp_path: Path) -> None:
    """The check can fail: `token list` opens the database, and SQLAlchemy shows among the modules."""
    code, modules, output = loaded_by("token", "list", data_dir=tmp_path / "data")
    assert code == 0
    assert "No tokens" in output
    assert "sqlalchemy" in heavy_among(modules)

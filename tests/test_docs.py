"""Documentation that cannot drift: every setting documented, the README's commands are the ones CI runs."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from callcheck.config import Settings, env_name

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        env = env_name(name)
        assert f"`{env}`" in docs, f"{env} is missing from docs/configuration.md"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in readme
    assert "./scripts/test" in ci


def test_every_run_option_is_in_the_ci_options_table() -> None:
    import typer.main

    from callcheck.cli import app

    group = typer.main.get_command(app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    ci = (ROOT / "docs" / "ci.md").read_text()
    options = [opt for param in run.params for opt in param.opts if opt.startswith("--")]
    assert "--sandbox" in options and "--time-scale" in options
    for option in options:
        assert f"| `{option}" in ci, f"{option} is missing from docs/ci.md's options table"


def test_the_readme_shows_a_first_suite_run_in_the_sandbox() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "callcheck run docs/examples/pizza.yaml --sandbox --time-scale 0.05" in readme
    assert "callcheck run docs/examples/pizza-failing.yaml --sandbox --time-scale 0.05" in readme
    failing = (ROOT / "docs" / "examples" / "pizza-failing.yaml").read_text()
    assert failing.startswith("# THIS SUITE FAILS ON PURPOSE")


def test_the_fast_run_is_documented_and_its_marker_registered() -> None:
    readme = (ROOT / "README.md").read_text()
    assert '-m "not e2e"' in readme
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("e2e:") for m in markers)


# The part of scripts/test that runs pytest on both databases, run with a stand-in pytest that exits with the code
# it is told for each database and writes down the arguments it was given.
FAKE_PYTEST = """#!/usr/bin/env bash
if [ -n "${CALLCHECK_TEST_BACKEND:-}" ]; then code=$PG_EXIT; else code=$SQLITE_EXIT; fi
echo "${CALLCHECK_TEST_BACKEND:-sqlite} $*" >> calls.txt
exit "$code"
"""


def run_test_script(tmp_path: Path, sqlite_exit: int, pg_exit: int, *args: str) -> tuple[int, list[str]]:
    script = (ROOT / "scripts" / "test").read_text()
    start = script.index("# pytest's exit codes")
    (tmp_path / "tail.sh").write_text("set -euo pipefail\n" + script[start:])
    fake = tmp_path / ".venv" / "bin" / "pytest"
    fake.parent.mkdir(parents=True)
    fake.write_text(FAKE_PYTEST)
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "SQLITE_EXIT": str(sqlite_exit), "PG_EXIT": str(pg_exit)}
    done = subprocess.run(["bash", "tail.sh", *args], cwd=tmp_path, env=env, capture_output=True, timeout=30)
    calls = tmp_path / "calls.txt"
    return done.returncode, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize(
    ("sqlite_exit", "pg_exit", "expected", "runs"),
    [
        (0, 0, 0, 2),
        (1, 0, 1, 2),  # a failure on SQLite still lets PostgreSQL run, and fails the script
        (0, 1, 1, 2),
        (5, 0, 0, 2),  # nothing selected on one database (browser tests only run on SQLite) is fine
        (0, 5, 0, 2),
        (5, 5, 5, 2),  # nothing selected anywhere is a mistake
        (2, 0, 2, 1),  # interrupted: stop at once
        (4, 0, 4, 1),  # usage error: PostgreSQL would say the same
        (1, 3, 1, 2),
    ],
)
def test_the_test_script_runs_both_databases_and_fails_when_either_fails(
    tmp_path: Path, sqlite_exit: int, pg_exit: int, expected: int, runs: int
) -> None:
    code, calls = run_test_script(tmp_path, sqlite_exit, pg_exit)
    assert code == expected
    assert len(calls) == runs
    assert calls[0] == "sqlite -n 2"
    if runs == 2:
        assert calls[1] == "postgres -n 2 -m not browser"


def test_the_test_script_combines_a_marker_with_its_own(tmp_path: Path) -> None:
    code, calls = run_test_script(tmp_path, 0, 0, "-m", "not e2e", "tests/test_docs.py", "-k", "script")
    assert code == 0
    assert calls == [
        "sqlite -n 2 -m not e2e tests/test_docs.py -k script",
        "postgres -n 2 -m (not e2e) and not browser tests/test_docs.py -k script",
    ]

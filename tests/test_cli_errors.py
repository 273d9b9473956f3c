"""Every command turns a bad setting, option, database or path into a few plain lines and exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcheck.cli import app
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.servers import outbound_calls, sandbox_env
from tests.test_cli_run import run_cli

EXIT_COULD_NOT_RUN = 2
# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_DATABASE = "postgresql://postgres:pw-not-to-show@127.0.0.1:1/nowhere"
SUITE = (
    "business: A pizza shop.\nnumber: '+15550100001'\nscenarios:\n"
    "  - name: order\n    goal: order a pizza\n    expect:\n      - final_state: completed\n"
)


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run a command in process: its exit code and the non-empty lines it printed."""
    result = CliRunner().invoke(app, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def usage_error(lines: list[str]) -> str:
    """The message of a usage error, unwrapped from the panel typer draws around it."""
    return " ".join(" ".join(line.strip("│╭╮╰╯─ ").split()) for line in lines if "Usage:" not in line).strip()


def sandbox_run_env(sandbox: SandboxServer, tmp_path: Path) -> dict[str, str]:
    return {
        **sandbox_env(sandbox),
        "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
    }


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (
            ["doctor"],
            {"CALLCHECK_POLL_MAX_S": "abc"},
            "invalid setting CALLCHECK_POLL_MAX_S: should be a valid number, unable to parse string as a number",
        ),
        (
            ["doctor"],
            {"ELEVENLABS_API_BASE": "http://[::1"},
            "invalid setting ELEVENLABS_API_BASE: is not a valid URL (Invalid port: ':1')",
        ),
        (
            ["serve", "--sandbox", "--port", "1"],
            {"CALLCHECK_SANDBOX_TIME_SCALE": "0"},
            "invalid setting CALLCHECK_SANDBOX_TIME_SCALE: should be greater than 0",
        ),
        (
            ["suggest", "--description", "A pizza shop."],
            {"CALLCHECK_HTTP_TIMEOUT_S": "0"},
            "invalid setting CALLCHECK_HTTP_TIMEOUT_S: should be greater than 0",
        ),
        (
            ["agent", "setup", "--dry-run"],
            {"CALLCHECK_MAX_BODY_BYTES": "-1"},
            "invalid setting CALLCHECK_MAX_BODY_BYTES: should be greater than or equal to 1000",
        ),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_and_exit_2(
    command: list[str], env: dict[str, str], expected: str
) -> None:
    code, lines = invoke(command, env)
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [expected, "(docs/configuration.md lists every setting and its allowed values)"]


def test_an_invalid_setting_stops_run_before_anything_is_stored(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), "CALLCHECK_POLL_INITIAL_S": "0"}
    code, lines = invoke(["run", str(tmp_path / "suite.yaml"), "--sandbox"], env)
    assert code == EXIT_COULD_NOT_RUN
    assert lines[0] == "invalid setting CALLCHECK_POLL_INITIAL_S: should be greater than or equal to 0.05"
    assert not (tmp_path / "data").exists()


def test_a_short_secret_key_is_refused_and_never_shown() -> None:
    code, lines = invoke(["doctor"], {"CALLCHECK_SECRET_KEY": "tiny-secret-value"})
    assert code == EXIT_COULD_NOT_RUN
    assert lines[0].startswith("invalid setting CALLCHECK_SECRET_KEY: is too short to be safe (under 32 characters)")
    assert not any("tiny-secret-value" in line for line in lines)


def test_serve_log_level_is_a_choice() -> None:
    code, lines = invoke(["serve", "--log-level", "loud"])
    assert code == EXIT_COULD_NOT_RUN
    assert (
        "Invalid value for '--log-level': Value error, 'loud' is not one of 'debug', 'info', 'warning', 'error'."
        in (usage_error(lines))
    )


@pytest.mark.parametrize("scale", ["0", "-1", "101"])
def test_sandbox_time_scale_must_be_positive_and_bounded(scale: str) -> None:
    code, lines = invoke(["sandbox", "--port", "1", "--time-scale", scale])
    assert code == EXIT_COULD_NOT_RUN
    assert "Invalid value for '--time-scale': must be more than 0 and at most 100" in usage_error(lines)


@pytest.mark.e2e
def test_serve_on_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    # A real process, as a user starts it: no uvicorn startup traceback, and the documented exit code.
    result = subprocess.run(
        [sys.executable, "-m", "callcheck", "serve", "--port", "1"],
        cwd=tmp_path,
        env={"CALLCHECK_DATA_DIR": str(tmp_path / "data"), "CALLCHECK_DATABASE_URL": UNREACHABLE_DATABASE},
        capture_output=True,
        text=True,
        timeout=150,  # the start (imports, the failed connection) can take over a minute on a loaded machine
    )
    assert result.returncode == EXIT_COULD_NOT_RUN, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "cannot use the database postgresql://postgres:***@127.0.0.1:1/nowhere (check CALLCHECK_DATABASE_URL): "
    )
    assert "Connection refused" in line and "pw-not-to-show" not in line


def test_run_on_an_unreachable_database_exits_2_before_dialing(tmp_path: Path, sandbox: SandboxServer) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {**sandbox_run_env(sandbox, tmp_path), "CALLCHECK_DATABASE_URL": UNREACHABLE_DATABASE}
    code, lines = invoke(["run", str(tmp_path / "suite.yaml")], env)
    assert code == EXIT_COULD_NOT_RUN
    assert len(lines) == 1 and "(check CALLCHECK_DATABASE_URL)" in lines[0]
    assert "pw-not-to-show" not in lines[0]
    assert outbound_calls(sandbox) == []


def test_a_data_dir_under_a_file_is_one_line_for_serve_and_run(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {"CALLCHECK_DATA_DIR": str(blocker / "data")}
    code, lines = invoke(["serve", "--port", "1"], env)
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [
        f"Cannot keep the cookie-signing key in {blocker / 'data' / 'secret_key'}: Not a directory "
        "(check CALLCHECK_DATA_DIR, or set CALLCHECK_SECRET_KEY)."
    ]
    code, lines = invoke(["run", str(tmp_path / "suite.yaml"), "--sandbox"], env)
    assert code == EXIT_COULD_NOT_RUN
    assert len(lines) == 1 and "(check CALLCHECK_DATA_DIR)" in lines[0] and "Not a directory" in lines[0]


def test_suggest_checks_its_output_before_drafting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    missing = tmp_path / "no" / "such" / "dir" / "x.yaml"
    code, lines = invoke(["suggest", "--description", "A pizza shop.", "-o", str(missing)])
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [f"cannot write --output {missing}: the directory {missing.parent} does not exist"]
    assert not (tmp_path / "no").exists()
    code, lines = invoke(["suggest", "--description", "A pizza shop.", "-o", str(blocker / "x.yaml")])
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [f"cannot write --output {blocker / 'x.yaml'}: {blocker} is a file, not a directory"]
    code, lines = invoke(["suggest", "--description", "A pizza shop.", "-o", str(tmp_path)])
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [f"cannot write --output {tmp_path}: it is a directory"]


def test_unusable_report_paths_exit_2_before_any_call(tmp_path: Path, sandbox: SandboxServer) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-dir").mkdir()
    existing = tmp_path / "old.json"
    existing.write_text("previous report")
    code, lines = invoke(
        [
            "run",
            str(tmp_path / "suite.yaml"),
            "--junit",
            str(tmp_path / "a-file" / "r.xml"),
            "--json",
            str(existing),
            "--html",
            str(tmp_path / "a-dir"),
        ],
        sandbox_run_env(sandbox, tmp_path),
    )
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [
        f"cannot write the --junit report to {tmp_path / 'a-file' / 'r.xml'}: {tmp_path / 'a-file'} is a file, "
        "not a directory",
        f"cannot write the --html report to {tmp_path / 'a-dir'}: it is a directory",
    ]
    assert outbound_calls(sandbox) == []
    assert existing.read_text() == "previous report"  # checked, not truncated


def test_two_reports_to_one_file_exit_2_before_any_call(tmp_path: Path, sandbox: SandboxServer) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    report = tmp_path / "r.xml"
    code, lines = invoke(
        ["run", str(tmp_path / "suite.yaml"), "--junit", str(report), "--json", str(report)],
        sandbox_run_env(sandbox, tmp_path),
    )
    assert code == EXIT_COULD_NOT_RUN
    assert lines == [f"--junit and --json both write {report}: give each report its own file"]
    assert outbound_calls(sandbox) == [] and not report.exists()


def test_report_checks_make_missing_directories_and_leave_no_file_behind(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    env = {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), "CALLCHECK_DATABASE_URL": UNREACHABLE_DATABASE}
    target = tmp_path / "reports" / "nested" / "r.xml"
    code, lines = invoke(["run", str(tmp_path / "suite.yaml"), "--junit", str(target)], env)
    assert code == EXIT_COULD_NOT_RUN and "CALLCHECK_DATABASE_URL" in lines[0]  # stopped by the database instead
    assert target.parent.is_dir() and not target.exists()


@pytest.mark.e2e
def test_a_report_that_fails_to_write_at_the_end_leaves_the_others_and_the_summary(tmp_path: Path) -> None:
    # /dev/full opens fine (so the early check passes) but every write to it fails: ENOSPC, at the end of the run.
    (tmp_path / "suite.yaml").write_text(SUITE)
    result = run_cli(tmp_path, "run", "suite.yaml", "--sandbox", "--junit", "/dev/full", "--json", "out/r.json")
    assert result.returncode == EXIT_COULD_NOT_RUN, result.stdout + result.stderr
    assert result.stdout.startswith("PASSED: ")  # the summary is still printed
    assert json.loads((tmp_path / "out" / "r.json").read_text())["scenarios"][0]["name"] == "order"
    assert result.stderr.splitlines()[-1] == "cannot write the --junit report to /dev/full: No space left on device"


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ("nan", "the rate must be between 0.01 and 6000 calls per minute"),
        ("inf", "the rate must be between 0.01 and 6000 calls per minute"),
        ("1e12/s", "the rate must be between 0.01 and 6000 calls per minute"),
        ("0.001/h", "the rate must be between 0.01 and 6000 calls per minute"),
        ("0", "the rate must be positive"),
        ("-3/min", "the rate must be positive"),
        ("fast", "use a number of calls per minute, e.g. 10/min"),
    ],
)
def test_run_refuses_a_rate_outside_the_apis_bounds(tmp_path: Path, rate: str, expected: str) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    code, lines = invoke(["run", str(suite), "--dry-run", "--rate", rate])
    assert code == EXIT_COULD_NOT_RUN
    assert f"Invalid value: {expected}" in usage_error(lines)


@pytest.mark.parametrize(("rate", "per_min"), [("10/min", 10.0), ("10", 10.0), ("0.5/s", 30.0), ("100/sec", 6000.0)])
def test_rates_at_and_within_the_bounds_are_accepted(rate: str, per_min: float) -> None:
    from callcheck.cli.run import parse_rate

    assert parse_rate(rate) == per_min

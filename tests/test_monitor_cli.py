"""`callcheck monitor ...` and `callcheck compare` on a real database (SQLite or PostgreSQL), with real alert
receivers on loopback for `monitor test-alert`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from callcheck.cli import app
from callcheck.config import Settings
from callcheck.domain.lifecycle import RunState
from callcheck.store import db
from callcheck.store.repo import Store
from tests.conftest import backend_env
from tests.receivers import HttpReceiver, SmtpReceiver

SUITE = """\
name: pizza-line
business: We are Pizza Palace, a pizza restaurant.
number: "+15550100001"
scenarios:
  - name: order
    goal: order a pizza
    repeat: 2
    expect:
      - final_state: completed
  - name: hours
    goal: ask for the opening hours
    expect:
      - final_state: completed
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "suite.yaml").write_text(SUITE)
    return {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), **backend_env()}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_add_list_show_pause_resume_run_remove(env: dict[str, str], tmp_path: Path) -> None:
    suite = str(tmp_path / "suite.yaml")
    code, out, err = invoke(
        env,
        "monitor", "add", suite, "--cron", "*/30 8-20 * * 1-5", "--tz", "Europe/Paris",
        "--alert-slack", "https://hooks.slack.com/services/T0/B0/SECRETPART", "--alert-email", "ops@example.com",
        "--after", "2",
    )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0] == "monitor pizza-line: suite 'pizza-line', cron \"*/30 8-20 * * 1-5\" (Europe/Paris)"
    # 3 calls a run, 26 runs a weekday, 5 weekdays a week.
    assert "This schedule places up to 56 calls a day (about 18.6 runs of 3 calls)." in out

    code, out, err = invoke(env, "monitor", "add", suite, "--every", "5s")
    assert code == 2 and "at least 10 s" in err
    code, out, err = invoke(env, "monitor", "add", suite, "--every", "15m")
    assert code == 2 and "'pizza-line' exists already" in err
    code, out, err = invoke(env, "monitor", "add", suite, "--every", "15m", "--name", "fast")
    assert code == 0 and "288 calls a day (96 runs of 3 calls)" in out
    code, out, err = invoke(env, "monitor", "add", str(tmp_path / "missing.yaml"), "--every", "15m")
    assert code == 2 and "cannot read" in err

    code, out, _ = invoke(env, "monitor", "list")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [["fast", "pending"], ["pizza-line", "pending"]]
    code, out, _ = invoke(env, "monitor", "show", "pizza-line")
    assert code == 0 and "SECRETPART" not in out
    assert "alerts: slack https://hooks.slack.com/…, email ops@example.com (after 2 failing run(s))" in out

    # The line moved to another number: the suite changes, the monitor (and its history) stays.
    (tmp_path / "moved.yaml").write_text(SUITE.replace("+15550100001", "+15550100007"))
    code, out, err = invoke(env, "monitor", "update", "fast", "--suite", str(tmp_path / "moved.yaml"), "--every", "1h")
    assert code == 0, err
    assert out.splitlines() == [
        "monitor fast: suite 'pizza-line', every 1h",
        "This schedule places up to 72 calls a day (24 runs of 3 calls).",
    ]
    code, _, err = invoke(env, "monitor", "update", "fast", "--every", "1s")
    assert code == 2 and "at least 10 s" in err
    assert invoke(env, "monitor", "update", "fast")[0] == 2
    assert invoke(env, "monitor", "pause", "fast")[1] == "monitor fast: paused\n"
    assert json.loads(invoke(env, "monitor", "show", "fast", "--json")[1])["badge"] == "paused"
    assert invoke(env, "monitor", "resume", "fast")[1] == "monitor fast: resumed (every 1h)\n"
    code, out, _ = invoke(env, "monitor", "run", "fast")
    assert code == 0 and "run requested" in out
    assert json.loads(invoke(env, "monitor", "show", "fast", "--json")[1])["run_requested"] is True
    assert invoke(env, "monitor", "remove", "fast")[0] == 0
    code, _, err = invoke(env, "monitor", "remove", "fast")
    assert code == 2 and err == "No monitor named 'fast'.\n"
    code, _, err = invoke(env, "monitor", "show", "nope")
    assert code == 2 and "No monitor named 'nope'." in err


def test_test_alert_reaches_every_channel_and_says_which_failed(env: dict[str, str], tmp_path: Path) -> None:
    with HttpReceiver() as receiver, SmtpReceiver() as smtp:
        smtp_env = {
            **env,
            "CALLCHECK_SMTP_HOST": "127.0.0.1",
            "CALLCHECK_SMTP_PORT": str(smtp.port),
            "CALLCHECK_SMTP_FROM": "callcheck@example.com",
            "CALLCHECK_SMTP_STARTTLS": "false",
        }
        code, _, err = invoke(
            smtp_env,
            "monitor", "add", str(tmp_path / "suite.yaml"), "--every", "1h", "--name", "m",
            "--alert-webhook", f"{receiver.url}/hook", "--alert-slack", f"{receiver.url}/slack",
            "--alert-email", "ops@example.com",
        )  # fmt: skip
        assert code == 0, err
        code, out, _ = invoke(smtp_env, "monitor", "test-alert", "m")
        assert code == 0, out
        assert out.splitlines() == [
            f"webhook {receiver.url}/…: delivered",
            f"slack {receiver.url}/…: delivered",
            "email ops@example.com: delivered",
        ]
        assert receiver.posts("/hook")[0].json()["event"] == "monitor.test"
        assert "test alert" in receiver.posts("/slack")[0].json()["text"]
        assert smtp.messages[0]["Subject"] == "[callcheck] m test alert (nothing changed)"

        invoke(smtp_env, "monitor", "add", str(tmp_path / "suite.yaml"), "--every", "1h", "--name", "broken",
               "--alert-webhook", f"{receiver.url}/dead")  # fmt: skip
        code, out, _ = invoke(smtp_env, "monitor", "test-alert", "broken")
        assert code == 1 and out == f"webhook {receiver.url}/…: failed: the webhook receiver answered HTTP 500\n"
        shown = json.loads(invoke(smtp_env, "monitor", "show", "broken", "--json")[1])
        assert [(d["kind"], d["outcome"], d["attempts"]) for d in shown["deliveries"]] == [("test", "failed", 1)]


def report(status: str, first_answer: float) -> dict[str, Any]:
    call = {"call_id": "c", "status": status, "first_response_s": first_answer, "duration_s": 30.0}
    return {"passed": status == "pass", "scenarios": [{"name": "order", "status": status, "runs": [call]}]}


def test_compare_prints_what_changed(env: dict[str, str]) -> None:
    settings = Settings(data_dir=Path(env["CALLCHECK_DATA_DIR"]), database_url=env.get("CALLCHECK_DATABASE_URL"))

    async def store_runs() -> list[str]:
        url = settings.resolved_database_url()
        await asyncio.to_thread(db.upgrade, url)
        engine = db.create_engine(url)
        store = Store(engine)
        ids = []
        for status, answer in (("fail", 4.0), ("pass", 2.5)):
            run = await store.runs.create_run(
                [], name="pizza-line", source_name="s", suite_text="x", only=None, concurrency=1, rate_per_min=None,
                simulated=True,
            )  # fmt: skip
            await store.runs.update_run(run.id, state=RunState.COMPLETED, exit_code=0, report=report(status, answer))
            ids.append(run.id)
        await engine.dispose()
        return ids

    first, second = asyncio.run(store_runs())
    code, out, err = invoke(env, "compare", first, second)
    assert code == 0, err
    assert "scenarios that changed:\n  order: fail -> pass\n" in out
    assert "  Pass rate: 0% -> 100% (+100 pts)\n" in out
    assert "  Time to first answer, p50 (s): 4.0 s -> 2.5 s (-1.5 s)\n" in out
    assert json.loads(invoke(env, "compare", first, second, "--json")[1])["flipped"][0]["name"] == "order"
    code, _, err = invoke(env, "compare", first, "nope")
    assert code == 2 and "No run with the id 'nope'." in err

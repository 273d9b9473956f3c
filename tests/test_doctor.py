"""`callcheck doctor` and `GET /api/doctor`: each broken set-up is reported with its fix, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from callcheck.cli import app as cli_app
from callcheck.cli.doctor import format_report
from callcheck.config import Settings
from callcheck.doctor import DoctorReport, run_doctor
from callcheck.providers import caller_from_settings
from callcheck.providers.elevenlabs.client import ElevenLabsClient
from callcheck.providers.elevenlabs.doctor import _publicly_reachable
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.providers.elevenlabs.setup import setup_agent
from callcheck.store import db
from tests.conftest import settings_for
from tests.servers import free_port

SECRET = "doctor-webhook-secret-0123456789"


def good_settings(sandbox: SandboxServer, tmp_path: Path, **extra: Any) -> Settings:
    """Everything set, webhook secret included; the database still to be migrated."""
    return settings_for(sandbox, tmp_path, elevenlabs_webhook_secret=SECRET, **extra)


def migrate(settings: Settings) -> Settings:
    """Migrate the settings' database, as `callcheck serve` does on start."""
    db.upgrade(settings.resolved_database_url())
    return settings


async def diagnose(settings: Settings, **kwargs: Any) -> DoctorReport:
    """Run the doctor with a fresh HTTP client."""
    async with httpx.AsyncClient() as http:
        return await run_doctor(settings, caller_from_settings(settings, http), **kwargs)


def by_name(report: DoctorReport) -> dict[str, Any]:
    """Checks by name."""
    return {check.name: check for check in report.checks}


def statuses(report: DoctorReport) -> dict[str, str]:
    """Status of every check by name."""
    return {check.name: check.status for check in report.checks}


def assert_only_failures(report: DoctorReport, failed: set[str], skipped: set[str] | None = None) -> None:
    """Exactly these checks fail and these are skipped; all others pass (or warn)."""
    got = statuses(report)
    assert {n for n, s in got.items() if s == "fail"} == failed, got
    assert {n for n, s in got.items() if s == "skip"} == (skipped or set()), got
    assert report.ok is False
    for check in report.checks:
        if check.status == "fail":
            assert check.fix, f"{check.name} has no fix"
        if check.status == "skip":
            assert check.ok is False and check.message.startswith("Skipped: ")


@pytest.fixture
def bare_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(time_scale=0.02, agent_ready=False)) as server:
        yield server


@pytest.fixture
def numbers_sandbox() -> Iterator[SandboxServer]:
    extra: list[dict[str, Any]] = [
        {"phone_number_id": "phnum_sip", "phone_number": "+15550008888", "provider": "sip_trunk"},
        {"phone_number_id": "phnum_in", "phone_number": "+15550007777", "supports_outbound": False},
    ]
    with SandboxServer(SandboxConfig(time_scale=0.02, extra_phone_numbers=extra)) as server:
        yield server


async def test_all_green(sandbox: SandboxServer, tmp_path: Path) -> None:
    report = await diagnose(migrate(good_settings(sandbox, tmp_path)))
    assert report.ok, format_report(report)
    # No public URL: calls are polled, a warning with its consequence; everything else passes.
    assert {n: s for n, s in statuses(report).items() if s != "pass"} == {"public_url": "warn"}
    assert list(statuses(report)) == [
        "settings",
        "api_key",
        "agent",
        "agent_overrides",
        "agent_max_duration",
        "agent_tools",
        "agent_optional_tools",
        "agent_analysis",
        "phone_number",
        "phone_number_provider",
        "phone_number_outbound",
        "webhook_secret",
        "public_url",
        "database",
    ]
    assert "calls are polled" in by_name(report)["public_url"].message
    assert format_report(report).endswith("All checks passed (1 warning).")


async def test_missing_settings_are_named_and_the_rest_skipped(tmp_path: Path) -> None:
    settings = migrate(settings_for(None, tmp_path, elevenlabs_webhook_secret=SECRET))
    report = await diagnose(settings)
    assert_only_failures(
        report,
        {"settings"},
        {
            "api_key",
            "agent",
            "agent_overrides",
            "agent_max_duration",
            "agent_tools",
            "agent_optional_tools",
            "agent_analysis",
            "phone_number",
            "phone_number_provider",
            "phone_number_outbound",
        },
    )
    message = by_name(report)["settings"].message
    for name in ("ELEVENLABS_API_KEY", "ELEVENLABS_AGENT_ID", "ELEVENLABS_AGENT_PHONE_NUMBER_ID"):
        assert name in message


async def test_wrong_api_key(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(sandbox, tmp_path, elevenlabs_api_key="not-the-key"))
    report = await diagnose(settings)
    assert_only_failures(
        report,
        {"api_key"},
        {
            "agent",
            "agent_overrides",
            "agent_max_duration",
            "agent_tools",
            "agent_optional_tools",
            "agent_analysis",
            "phone_number",
            "phone_number_provider",
            "phone_number_outbound",
        },
    )
    check = by_name(report)["api_key"]
    assert "refused the API key (401" in check.message
    assert "ELEVENLABS_API_KEY" in check.fix
    assert "not-the-key" not in report.model_dump_json()


async def test_unreachable_api(tmp_path: Path) -> None:
    settings = migrate(
        settings_for(
            None,
            tmp_path,
            elevenlabs_api_key="k",
            elevenlabs_agent_id="a",
            elevenlabs_agent_phone_number_id="p",
            elevenlabs_webhook_secret=SECRET,
            elevenlabs_api_base=f"http://127.0.0.1:{free_port()}",
        )
    )
    report = await diagnose(settings)
    check = by_name(report)["api_key"]
    assert check.status == "fail" and "Could not reach ElevenLabs" in check.message
    assert "ELEVENLABS_API_BASE" in check.fix


async def test_unknown_agent(sandbox: SandboxServer, tmp_path: Path) -> None:
    report = await diagnose(migrate(good_settings(sandbox, tmp_path, elevenlabs_agent_id="agent_nope")))
    assert_only_failures(
        report,
        {"agent"},
        {"agent_overrides", "agent_max_duration", "agent_tools", "agent_optional_tools", "agent_analysis"},
    )
    check = by_name(report)["agent"]
    assert "agent_nope" in check.message
    assert "callcheck agent setup" in check.fix


async def test_bare_agent_then_setup_makes_it_green(bare_sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(bare_sandbox, tmp_path))
    report = await diagnose(settings)
    assert_only_failures(report, {"agent_overrides", "agent_max_duration", "agent_tools", "agent_analysis"})
    checks = by_name(report)
    assert checks["agent_optional_tools"].status == "warn"
    assert "voicemail_detection" in checks["agent_optional_tools"].message
    for name in ("agent_overrides", "agent_max_duration", "agent_tools", "agent_analysis"):
        assert "callcheck agent setup" in checks[name].fix
    assert "agent.prompt.prompt" in checks["agent_overrides"].message
    assert "tts.speed" in checks["agent_overrides"].message
    assert "play_keypad_touch_tone" in checks["agent_tools"].message
    assert "goal_achieved" in checks["agent_analysis"].message

    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(http, bare_sandbox.config.api_key, bare_sandbox.url)
        await setup_agent(client, agent_id=bare_sandbox.config.agent_id)
    assert (await diagnose(settings)).ok


async def test_unknown_phone_number(sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(sandbox, tmp_path, elevenlabs_agent_phone_number_id="phnum_nope"))
    report = await diagnose(settings)
    assert_only_failures(report, {"phone_number"}, {"phone_number_provider", "phone_number_outbound"})
    check = by_name(report)["phone_number"]
    assert "phnum_nope" in check.message and "phnum_sandbox" in check.message
    assert "ELEVENLABS_AGENT_PHONE_NUMBER_ID" in check.fix


async def test_sip_trunk_number(numbers_sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(numbers_sandbox, tmp_path, elevenlabs_agent_phone_number_id="phnum_sip"))
    report = await diagnose(settings)
    assert_only_failures(report, {"phone_number_provider"})
    assert "sip_trunk" in by_name(report)["phone_number_provider"].message


async def test_number_without_outbound(numbers_sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(numbers_sandbox, tmp_path, elevenlabs_agent_phone_number_id="phnum_in"))
    report = await diagnose(settings)
    assert_only_failures(report, {"phone_number_outbound"})
    assert "does not support outbound" in by_name(report)["phone_number_outbound"].message


async def test_no_webhook_secret_is_a_warning_with_its_consequence(sandbox: SandboxServer, tmp_path: Path) -> None:
    # The README's minimal set-up: the secret is optional, so its absence never fails the doctor.
    report = await diagnose(migrate(settings_for(sandbox, tmp_path)))
    assert report.ok, format_report(report)
    check = by_name(report)["webhook_secret"]
    assert check.status == "warn" and "calls are polled" in check.message and "(optional)" in check.message
    assert "ELEVENLABS_WEBHOOK_SECRET" in check.fix
    assert format_report(report).endswith("All checks passed (2 warnings).")


async def test_database_missing_or_not_migrated(sandbox: SandboxServer, tmp_path: Path) -> None:
    # A SQLite file whatever the test backend: "does not exist yet" is about a file.
    settings = good_settings(sandbox, tmp_path).model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'data' / 'callcheck.db'}"}
    )
    report = await diagnose(settings)
    # A fresh data directory is fine: the first start creates the database.
    assert report.ok, format_report(report)
    check = by_name(report)["database"]
    assert check.status == "pass" and "does not exist yet; callcheck creates it when it starts" in check.message
    path = Path(settings.resolved_database_url().removeprefix("sqlite:///"))
    assert not await asyncio.to_thread(path.exists)  # the check itself created nothing

    path.parent.mkdir(parents=True, exist_ok=True)
    sqlite3.connect(path).close()
    report = await diagnose(settings)
    assert_only_failures(report, {"database"})
    assert "has not been migrated" in by_name(report)["database"].message
    assert "callcheck serve" in by_name(report)["database"].fix

    migrate(settings)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000_old'")
    report = await diagnose(settings)
    assert "0000_old" in by_name(report)["database"].message


async def test_public_url_checks_the_agents_webhook(bare_sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = migrate(good_settings(bare_sandbox, tmp_path, public_url="http://127.0.0.1:5000"))
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(http, bare_sandbox.config.api_key, bare_sandbox.url)
        await setup_agent(client, agent_id=bare_sandbox.config.agent_id)
        report = await diagnose(settings)
        checks = by_name(report)
        # A loopback URL is fine for the local sandbox (it is not ElevenLabs itself).
        assert checks["webhook_url"].status == "pass"
        assert checks["agent_webhook"].status == "fail"
        assert "post-call events transcript, audio, call_initiation_failure" in checks["agent_webhook"].message

        url = "http://127.0.0.1:5000/api/webhooks/elevenlabs"
        await setup_agent(client, agent_id=bare_sandbox.config.agent_id, webhook_url=url)
        check = by_name(await diagnose(settings))["agent_webhook"]
        assert check.status == "fail" and "no post-call webhook id" in check.message
        assert url in check.fix and "ELEVENLABS_WEBHOOK_SECRET" in check.fix

        await setup_agent(client, agent_id=bare_sandbox.config.agent_id, webhook_url=url, webhook_id="wh_1")
        check = by_name(await diagnose(settings))["agent_webhook"]
        assert check.status == "fail" and "wh_1 does not exist" in check.message

        other = "http://127.0.0.1:5001/api/webhooks/elevenlabs"
        created = await setup_agent(
            client, agent_id=bare_sandbox.config.agent_id, webhook_url=other, create_webhook=True
        )
        assert created.webhook_secret
        check = by_name(await diagnose(settings))["agent_webhook"]
        assert check.status == "fail" and f"points at {other}, not {url}" in check.message

        await setup_agent(client, agent_id=bare_sandbox.config.agent_id, webhook_url=url, create_webhook=True)
        report = await diagnose(settings)
    check = by_name(report)["agent_webhook"]
    assert check.status == "pass" and url in check.message
    assert report.ok


def test_publicly_reachable() -> None:
    assert _publicly_reachable("https://cc.example.com/api/webhooks/elevenlabs") is None
    assert _publicly_reachable("http://cc.example.com/x") == "it is not an https URL"
    assert "private" in (_publicly_reachable("https://192.168.1.4/x") or "")
    assert "private" in (_publicly_reachable("https://127.0.0.1/x") or "")
    assert "not reachable" in (_publicly_reachable("https://localhost/x") or "")


async def test_loopback_url_fails_against_the_real_elevenlabs(tmp_path: Path) -> None:
    # No request is answered here (no key): only the URL's shape is judged against the real API base.
    settings = settings_for(None, tmp_path, public_url="http://127.0.0.1:5000")
    report = await diagnose(settings)
    check = by_name(report)["webhook_url"]
    assert check.status == "fail" and "not an https URL" in check.message
    assert "CALLCHECK_PUBLIC_URL" in check.fix


# ---------------------------------------------------------------- the API and the CLI


async def test_api_doctor_json_has_no_secrets(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(good_settings(sandbox, tmp_path, workers=False))
    response = await api.get("/api/doctor")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True, body
    assert {"name", "ok", "status", "message", "fix"} <= set(body["checks"][0])
    assert next(c["name"] for c in body["checks"]) == "settings"
    assert sandbox.config.api_key not in response.text
    assert SECRET not in response.text


async def test_api_doctor_reports_failures_with_200(
    client_for: Any, bare_sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(bare_sandbox, tmp_path, workers=False))
    body = (await api.get("/api/doctor")).json()
    assert body["ok"] is False
    failed = {c["name"] for c in body["checks"] if c["status"] == "fail"}
    assert failed == {"agent_overrides", "agent_max_duration", "agent_tools", "agent_analysis"}


def env_for(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, tmp_path: Path) -> None:
    """Configure a CLI run through the environment."""
    monkeypatch.setenv("ELEVENLABS_API_BASE", sandbox.url)
    monkeypatch.setenv("ELEVENLABS_API_KEY", sandbox.config.api_key)
    monkeypatch.setenv("ELEVENLABS_AGENT_ID", sandbox.config.agent_id)
    monkeypatch.setenv("ELEVENLABS_AGENT_PHONE_NUMBER_ID", sandbox.config.phone_number_id)
    monkeypatch.setenv("ELEVENLABS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("CALLCHECK_DATA_DIR", str(tmp_path / "cli-data"))


def test_cli_doctor_exit_codes(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer, tmp_path: Path) -> None:
    env_for(monkeypatch, sandbox, tmp_path)
    runner = CliRunner()
    fresh = runner.invoke(cli_app, ["doctor"])
    assert fresh.exit_code == 0, fresh.output  # a data directory not created yet is fine
    assert "does not exist yet" in fresh.output and SECRET not in fresh.output
    database = tmp_path / "cli-data" / "callcheck.db"
    database.parent.mkdir(parents=True)
    sqlite3.connect(database).close()
    unmigrated = runner.invoke(cli_app, ["doctor"])
    assert unmigrated.exit_code == 1
    assert "[FAIL] database" in unmigrated.output
    assert "fix: callcheck migrates its database" in unmigrated.output
    assert SECRET not in unmigrated.output

    migrate(Settings())
    green = runner.invoke(cli_app, ["doctor"])
    assert green.exit_code == 0, green.output
    assert "All checks passed (1 warning)." in green.output

    as_json = runner.invoke(cli_app, ["doctor", "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["ok"] is True

    monkeypatch.setenv("ELEVENLABS_AGENT_PHONE_NUMBER_ID", "phnum_nope")
    broken = runner.invoke(cli_app, ["doctor", "--json"])
    assert broken.exit_code == 1
    statuses_ = {c["name"]: c["status"] for c in json.loads(broken.output)["checks"]}
    assert statuses_["phone_number"] == "fail" and statuses_["phone_number_outbound"] == "skip"


@pytest.mark.e2e
def test_sandbox_command_prints_the_env_and_serves(tmp_path: Path) -> None:
    port = free_port()
    callcheck = Path(sys.executable).parent / "callcheck"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELEVENLABS_", "CALLCHECK_"))}
    process = subprocess.Popen(
        [str(callcheck), "sandbox", "--port", str(port), "--time-scale", "0.05", "--bare-agent"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().strip() for _ in range(5)]
        exports = dict(line.removeprefix("export ").split("=", 1) for line in lines[1:])
        assert exports == {
            "ELEVENLABS_API_BASE": f"http://127.0.0.1:{port}",
            "ELEVENLABS_API_KEY": "sandbox-key",
            "ELEVENLABS_AGENT_ID": "agent_sandbox",
            "ELEVENLABS_AGENT_PHONE_NUMBER_ID": "phnum_sandbox",
        }
        deadline = time.monotonic() + 30
        while True:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/_sandbox", timeout=1).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        assert info["agent_ready"] is False
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_doctor_then_agent_setup_then_doctor_ends_green(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The README's minimal configuration (no webhook secret, no public URL), a fresh data directory, a bare agent.
    with SandboxServer(SandboxConfig(time_scale=0.02, agent_ready=False)) as bare:
        monkeypatch.setenv("ELEVENLABS_API_BASE", bare.url)
        monkeypatch.setenv("ELEVENLABS_API_KEY", bare.config.api_key)
        monkeypatch.setenv("ELEVENLABS_AGENT_ID", bare.config.agent_id)
        monkeypatch.setenv("ELEVENLABS_AGENT_PHONE_NUMBER_ID", bare.config.phone_number_id)
        monkeypatch.setenv("CALLCHECK_DATA_DIR", str(tmp_path / "fresh-data"))
        runner = CliRunner()
        first = runner.invoke(cli_app, ["doctor"])
        assert first.exit_code == 1
        failed = [line for line in first.output.splitlines() if line.startswith("[FAIL]")]
        assert [line.split(":")[0] for line in failed] == [
            "[FAIL] agent_overrides",
            "[FAIL] agent_max_duration",
            "[FAIL] agent_tools",
            "[FAIL] agent_analysis",
        ], first.output
        setup = runner.invoke(cli_app, ["agent", "setup"])
        assert setup.exit_code == 0, setup.output
        second = runner.invoke(cli_app, ["doctor"])
        assert second.exit_code == 0, second.output
        assert "[FAIL]" not in second.output and "[skip]" not in second.output
        assert "[warn] webhook_secret" in second.output and "[warn] public_url" in second.output
        assert second.output.rstrip().endswith("All checks passed (2 warnings).")

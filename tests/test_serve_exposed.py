"""`callcheck serve` as a real subprocess: it refuses an address beyond loopback without a token, and a server
with tokens answers nobody without one; `callcheck token` made them. Driven with curl, as the issue's audit was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from callcheck.cli import app as cli_app
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from tests.conftest import backend_env
from tests.servers import free_port, sandbox_env, serve_process, wait_healthy
from tests.test_serve import curl


def callcheck(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m callcheck ...` with exactly this environment (plus PATH)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env}
    return subprocess.run(
        [sys.executable, "-m", "callcheck", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), **backend_env()}


def test_serve_refuses_every_address_beyond_loopback_without_a_token(env: dict[str, str], tmp_path: Path) -> None:
    for host in ["0.0.0.0", "::"]:
        result = callcheck(env, tmp_path, "serve", "--host", host, "--port", str(free_port()))
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"Refusing to serve on {host} without an API token" in lines[0]
        assert "callcheck token create --name NAME" in lines[0]


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("CALLCHECK_PUBLIC_URL", "https://abc123.tunnel.example", "CALLCHECK_PUBLIC_URL (abc123.tunnel.example)"),
        ("CALLCHECK_TRUSTED_PROXIES", "127.0.0.1", "CALLCHECK_TRUSTED_PROXIES"),
    ],
)
def test_serve_on_loopback_refuses_too_when_a_tunnel_or_proxy_brings_others_in(
    env: dict[str, str], tmp_path: Path, setting: str, value: str, words: str
) -> None:
    result = callcheck({**env, setting: value}, tmp_path, "serve", "--port", str(free_port()))
    assert result.returncode == 2, result
    assert words in result.stderr and "callcheck token create" in result.stderr


def test_exposed_server_with_a_token_asks_everyone_for_it(env: dict[str, str], tmp_path: Path) -> None:
    created = callcheck(env, tmp_path, "token", "create", "--name", "ops", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("cc_") and "shown only this once" in created.stderr
    listed = callcheck(env, tmp_path, "token", "list")
    assert "ops" in listed.stdout and "admin" in listed.stdout and token not in listed.stdout
    with SandboxServer(SandboxConfig(time_scale=0.02)) as sandbox:
        port = free_port()
        process = serve_process({**env, **sandbox_env(sandbox)}, port, tmp_path, "--host", "0.0.0.0")
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process=process)
            status, body = curl(f"{url}/api/calls")
            assert status == 401 and "API token" in body["error"]
            status, body = curl(f"{url}/api/calls", "-H", f"Authorization: Bearer {token}")
            assert status == 200 and body["calls"] == []
            status, body = curl(
                "-X", "POST", f"{url}/api/call", "-H", "Content-Type: application/json",
                "-d", '{"to_number":"+15550100001","business_description":"x"}',
            )  # fmt: skip
            assert status == 401
            # Every token revoked while it runs: the exposed server shuts rather than opens.
            assert callcheck(env, tmp_path, "token", "revoke", "ops").returncode == 0
            status, body = curl(f"{url}/api/calls")
            assert status == 401 and "no API token exists" in body["error"]
            assert httpx.get(f"{url}/healthz").status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_the_rebinding_curl_of_the_issue_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(time_scale=0.02)) as sandbox:
        port = free_port()
        process = serve_process({**env, **sandbox_env(sandbox)}, port, tmp_path)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process=process)
            status, body = curl(
                "-X", "POST", f"{url}/api/call",
                "-H", f"Host: rebind.attacker.example:{port}",
                "-H", f"Origin: http://rebind.attacker.example:{port}",
                "-H", "Content-Type: application/json",
                "-d", '{"to_number":"+15550100001","business_description":"x"}',
            )  # fmt: skip
            assert status == 421, body
            assert "CALLCHECK_ALLOWED_HOSTS" in body["error"]
            dialed = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": "/v1/convai/twilio/outbound-call"})
            assert dialed.json() == []
            # The same request by the server's own name goes through (the server is otherwise open: no token).
            status, body = curl(
                "-X", "POST", f"{url}/api/call", "-H", "Content-Type: application/json",
                "-d", '{"to_number":"+15550100001","business_description":"x"}',
            )  # fmt: skip
            assert status == 200, body
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_token_commands_refuse_bad_names_scopes_and_unknown_tokens(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process (typer's runner): five subprocesses would each pay callcheck's start-up.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    bad_name = runner.invoke(cli_app, ["token", "create", "--name", "has space"])
    assert bad_name.exit_code == 2 and "A token name is" in bad_name.output
    bad_scope = runner.invoke(cli_app, ["token", "create", "--name", "x", "--scope", "root"])
    assert bad_scope.exit_code == 2
    unknown = runner.invoke(cli_app, ["token", "revoke", "nobody"])
    assert unknown.exit_code == 1 and "No token is named 'nobody'" in unknown.output
    first = runner.invoke(cli_app, ["token", "create", "--name", "twice"])
    again = runner.invoke(cli_app, ["token", "create", "--name", "twice"])
    assert first.exit_code == 0 and again.exit_code == 2 and "exists already" in again.output
    listed = runner.invoke(cli_app, ["token", "list"])
    assert "twice" in listed.output and "call" in listed.output

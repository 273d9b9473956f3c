"""Real servers for end-to-end tests: callcheck in a thread (uvicorn) or as a `callcheck serve` subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.providers.elevenlabs.sandbox import HeldClock, SandboxServer

OUTBOUND = "/v1/convai/twilio/outbound-call"


def sandbox_env(sandbox: SandboxServer) -> dict[str, str]:
    """The environment that points a `callcheck` subprocess at `sandbox` (its key, agent, number and URL)."""
    return {
        "ELEVENLABS_API_KEY": sandbox.config.api_key,
        "ELEVENLABS_AGENT_ID": sandbox.config.agent_id,
        "ELEVENLABS_AGENT_PHONE_NUMBER_ID": sandbox.config.phone_number_id,
        "ELEVENLABS_API_BASE": sandbox.url,
    }


def outbound_calls(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """Every outbound-call request the sandbox received, oldest first (what was dialed)."""
    answer = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND})
    answer.raise_for_status()
    calls: list[dict[str, Any]] = answer.json()
    return calls


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A `callcheck serve` imports, migrates and launches DBOS before it answers: seconds on an idle machine, but more
# than a minute was seen on two cores shared by many test processes. The deadline only catches a server that hangs.
HEALTHY_WITHIN_S = 150.0
# For one request to a server in another process (httpx's default is 5 s): a request that places a call or checks
# the set-up waits on the sandbox and the database, slow under load.
HTTP_TIMEOUT_S = 60.0


def wait_healthy(url: str, timeout: float = HEALTHY_WITHIN_S, process: subprocess.Popen[Any] | None = None) -> None:
    """Block until GET {url}/healthz answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not become healthy")


class AppServer:
    """callcheck's app served by uvicorn on a loopback port, in a background thread."""

    def __init__(self, settings: Settings, port: int | None = None, sandbox_clock: HeldClock | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self.sandbox_clock = sandbox_clock  # ages the calls of a `sandbox=True` server's own sandbox
        app = create_app(settings, sandbox_clock=sandbox_clock)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> AppServer:
        self.thread.start()
        wait_healthy(self.url)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_process(env: dict[str, str], port: int, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `python -m callcheck serve` with exactly this environment (plus PATH)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), **env}
    # Output goes to a file (not a pipe nobody reads, which could fill up and stall the server).
    with open(cwd / f"serve-{port}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "callcheck", "serve", "--port", str(port), "--log-level", "warning", *args],
            cwd=cwd,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

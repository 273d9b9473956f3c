"""Running a sandbox: in a background thread for tests (`SandboxServer`), or in the foreground for the CLI."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from callcheck.providers.elevenlabs.sandbox.app import create_sandbox_app
from callcheck.providers.elevenlabs.sandbox.config import SandboxConfig

SANDBOX_THREAD = "callcheck-sandbox"  # the thread it serves from (`serve --sandbox` leaves its log lines out)


class SandboxServer:
    """A sandbox served by uvicorn on loopback in a background thread.

    `port=0` picks a free port; `.url` is known once `start()` returns, which is when it accepts connections.
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.app = create_sandbox_app(self.config)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        """Base URL to give callcheck as ELEVENLABS_API_BASE, e.g. http://127.0.0.1:54321."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("sandbox server already started")
        # Bind here rather than in uvicorn so the real port is known before the thread runs.
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        # No log_config, no log_level, no access_log=False: each of them re-configures the process-wide uvicorn
        # loggers, which silenced the app's own uvicorn lines (its startup, its access log) under `serve --sandbox`.
        config = uvicorn.Config(self.app, log_config=None, log_level=None, ws="none", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=SANDBOX_THREAD, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("sandbox server failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("sandbox server did not start in time")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread; pending webhooks are dropped."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_sandbox_forever(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve a sandbox in the foreground until interrupted (what `callcheck sandbox` runs)."""
    uvicorn.run(create_sandbox_app(config), host=host, port=port, ws="none", log_level="info")

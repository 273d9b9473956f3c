"""A scripted HTTP server on loopback (real HTTP): answers every request with the status, type and body it is told,
and records each request. The base of the fake OpenAI endpoint, and of upstreams that misbehave in ways the
sandbox (a faithful ElevenLabs) never does: a proxy's HTML error page, a redirect, a malformed 200.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar


class ScriptedServer:
    """Answers `status`, `content_type` and `raw` (or `reply` as JSON) to every request; keeps what it was sent."""

    def __init__(self) -> None:
        self.status = 200
        self.content_type = "application/json"
        self.headers: dict[str, str] = {}
        self.reply: Any = None
        self.raw: str | None = None
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                scripted.requests.append((self.path, dict(self.headers), json.loads(body) if body else None))
                payload = scripted.raw if scripted.raw is not None else json.dumps(scripted.reply)
                data = payload.encode()
                self.send_response(scripted.status)
                self.send_header("Content-Type", scripted.content_type)
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


S = TypeVar("S", bound=ScriptedServer)


@contextmanager
def running(server: S) -> Iterator[S]:
    """`server`, serving until the block ends."""
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()

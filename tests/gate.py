"""A loopback HTTP gate between callcheck and the sandbox, to stop a request at a chosen moment.

Kill tests need a process to be killed at an exact point (before a dial reaches ElevenLabs, or after ElevenLabs took
it but before its answer came back), never at a moment left to timing luck. The gate forwards every request to the
sandbox, except the first one matching a rule, which it holds — before forwarding it, or after — until told to let
go. The test waits for `held` to be set, kills the process, then releases the gate.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import free_port

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Hold:
    """Hold the `nth` request (1 = the first) to `path` with `method`: `before` forwarding it (it never reaches the
    sandbox) or after (the sandbox acted on it; its answer is held back)."""

    method: str
    path: str
    before: bool
    nth: int = 1
    seen: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


class Gate:
    """The gate server, in a background thread; `url` is what callcheck takes for ElevenLabs' API base."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.holds: list[Hold] = []
        app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "DELETE", "PATCH"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def hold(self, method: str, path: str, *, before: bool, nth: int = 1) -> Hold:
        """Add a rule; the returned Hold's `held` is set once its request is being held."""
        rule = Hold(method, path, before, nth)
        self.holds.append(rule)
        return rule

    def release_all(self) -> None:
        for rule in self.holds:
            rule.released.set()

    async def _wait(self, rule: Hold) -> None:
        rule.held.set()
        await asyncio.to_thread(rule.released.wait)

    async def _forward(self, request: Request) -> Response:
        rule = next(
            (
                h
                for h in self.holds
                if h.method == request.method and request.url.path == h.path and not h.held.is_set()
            ),
            None,
        )
        if rule is not None:
            rule.seen += 1
            if rule.seen != rule.nth:
                rule = None
        body = await request.body()
        if rule is not None and rule.before:
            await self._wait(rule)
            return Response(status_code=503)  # its caller is dead by now; nothing was forwarded
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.request(
                request.method,
                f"{self.upstream}{request.url.path}",
                params=request.query_params,
                content=body,
                headers=headers,
            )
        if rule is not None:
            await self._wait(rule)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    def __enter__(self) -> Gate:
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.release_all()
        self.server.should_exit = True
        self.thread.join(timeout=10)

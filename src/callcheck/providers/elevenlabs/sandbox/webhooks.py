"""Signed post-call webhooks (contract §5), sent in the background by one dispatcher task per sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("callcheck.sandbox.webhooks")

SIGNATURE_HEADER = "ElevenLabs-Signature"


def sign(secret: str, body: str, timestamp: int | None = None) -> str:
    """`t=<unix>,v0=<hex hmac_sha256(secret, "<t>.<body>")>`, exactly as ElevenLabs signs (§5.2)."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v0={mac}"


@dataclass(order=True)
class _Due:
    due_mono: float
    seq: int
    event_type: str = field(compare=False)
    conversation_id: str = field(compare=False)
    # Builds `data` when the event fires, so the payload shows the conversation as it is then.
    build: Callable[[], dict[str, Any]] = field(compare=False)
    # Where and with which secret; None: the sandbox's configured webhook.
    target: tuple[str, str] | None = field(default=None, compare=False)


class WebhookDispatcher:
    """Holds webhooks until they are due, then POSTs each one once (retrying a failed attempt a few times).

    Started and stopped by the app's lifespan; deliveries run as tasks it tracks, so request handling never
    waits for a receiver and nothing is left running after `stop()`.
    """

    def __init__(
        self,
        url: str | None,
        secret: str,
        *,
        retries: int,
        retry_delay_secs: float,
        timeout_secs: float,
        record: Callable[[dict[str, Any]], None],
    ) -> None:
        self.url = url
        self.secret = secret
        self.retries = retries
        self.retry_delay_secs = retry_delay_secs
        self.timeout_secs = timeout_secs
        self._record = record
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Start the dispatcher loop on the running event loop."""
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=self.timeout_secs)
        self._loop_task = asyncio.create_task(self._run(), name="sandbox-webhooks")

    async def stop(self) -> None:
        """Cancel the loop and any delivery still in flight; undelivered webhooks are dropped."""
        tasks = [t for t in (self._loop_task, *self._deliveries) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def schedule(
        self,
        event_type: str,
        conversation_id: str,
        due_mono: float,
        build: Callable[[], dict[str, Any]],
        target: tuple[str, str] | None = None,
    ) -> None:
        """Send `event_type` with data from `build()` at `due_mono` to `target` (url, secret) or the configured URL."""
        if target is None and not self.url:
            return
        heapq.heappush(self._heap, _Due(due_mono, next(self._seq), event_type, conversation_id, build, target))
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            timeout = max(0.0, self._heap[0].due_mono - time.monotonic()) if self._heap else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            while self._heap and self._heap[0].due_mono <= time.monotonic():
                due = heapq.heappop(self._heap)
                try:
                    payload = {
                        "type": due.event_type,
                        "event_timestamp": int(time.time()),
                        "data": due.build(),
                    }
                except Exception:  # a bug building one payload must not stop every later webhook
                    log.exception("sandbox: could not build %s for %s", due.event_type, due.conversation_id)
                    continue
                task = asyncio.create_task(self._deliver(due, payload))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, due: _Due, payload: dict[str, Any]) -> None:
        assert self._client is not None
        url, secret = due.target or (self.url or "", self.secret)
        body = json.dumps(payload, separators=(",", ":"))
        delay = self.retry_delay_secs
        for attempt in range(1, self.retries + 2):
            # Sign each attempt afresh: a retry long after the event must still pass the 30-minute tolerance.
            headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(secret, body)}
            entry: dict[str, Any] = {
                "type": due.event_type,
                "conversation_id": due.conversation_id,
                "attempt": attempt,
                "url": url,
                "status_code": None,
                "error": None,
            }
            try:
                response = await self._client.post(url, content=body.encode("utf-8"), headers=headers)
                entry["status_code"] = response.status_code
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                ok = False
            entry["delivered"] = ok
            self._record(entry)
            if ok:
                return
            log.warning(
                "sandbox: webhook %s for %s failed (attempt %d): %s",
                due.event_type,
                due.conversation_id,
                attempt,
                entry["error"] or f"HTTP {entry['status_code']}",
            )
            if attempt <= self.retries:
                await asyncio.sleep(delay)
                delay *= 2

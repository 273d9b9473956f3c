"""The webhook route's own cost, in one process: raw ASGI calls (no HTTP client, no uvicorn), workers off.

    .venv/bin/python bench/webhook_path.py [--calls 1000] [--passes 5]
    PYTHONPATH=/tmp/before/src .venv/bin/python bench/webhook_path.py   # another tree (git archive REV src | tar -x)

`--calls` RINGING calls are stored, then one signed post_call_transcription webhook for each is sent straight to the
app, one at a time, in `--passes` passes: the process's CPU (every thread) per webhook of
each pass, and the lowest (the least disturbed by a shared machine). Also counted, per webhook: the statements sent
to the database by kind, which do not depend on the machine's load. Without workers nothing follows the calls:
what the answer sets in motion in the call's workflow (bench/webhooks.py measures it) is not here. No test asserts
any of these times.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from run import WEBHOOK_SECRET, stored_call, webhook_body

from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.domain.lifecycle import CallState
from callcheck.providers.elevenlabs.webhooks import sign

HOST = "127.0.0.1:8000"
PATH = "/api/webhooks/elevenlabs"


async def call_asgi(app: Any, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One request handed to the ASGI app as a server would; (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # never: the route reads its body once
        return {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return answer["status"], answer["body"]


def counting_statements(engine: Any) -> tuple[collections.Counter[str], Callable[[], None]]:
    """Count every statement the store's engine sends, by its first word; and the function that stops counting."""
    statements: collections.Counter[str] = collections.Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements[statement.split(None, 1)[0].upper()] += 1

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)

    def stop() -> None:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)

    return statements, stop


async def main(calls: int, passes: int) -> None:
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp()),
        secret_key=SecretStr("bench-secret-key-0123456789-abcdefgh"),
        elevenlabs_api_key=SecretStr("bench-key"),
        elevenlabs_agent_id="agent_bench",
        elevenlabs_agent_phone_number_id="phnum_bench",
        elevenlabs_api_base="http://127.0.0.1:9",  # never asked: the webhook carries the transcript and has_audio
        elevenlabs_webhook_secret=SecretStr(WEBHOOK_SECRET),
        workers=False,
        max_calls_per_minute=0,
        max_calls_per_day=0,
        max_calls_per_number_per_day=0,
    )
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        store = app.state.services.store
        deliveries: list[tuple[bytes, dict[str, str]]] = []
        for i in range(calls):
            call = await stored_call(store, CallState.DIALING)
            await store.move_call(call.id, CallState.RINGING, conversation_id=f"conv_{i}")
            body = webhook_body({"id": call.id, "conversation_id": f"conv_{i}"})
            headers = {"host": HOST, "content-type": "application/json", "content-length": str(len(body))}
            deliveries.append((body, {**headers, "ElevenLabs-Signature": sign(WEBHOOK_SECRET, body)}))
        for _ in range(50):  # warm-up
            await call_asgi(manager.app, "GET", "/healthz", {"host": HOST}, b"")
        statements, stop = counting_statements(store.engine)
        per_pass = calls // passes
        cpu: list[float] = []
        for n in range(passes):
            started = time.process_time()
            for body, headers in deliveries[n * per_pass : (n + 1) * per_pass]:
                status, answer = await call_asgi(manager.app, "POST", PATH, headers, body)
                assert status == 200 and b'"matched":true' in answer, answer
            cpu.append((time.process_time() - started) / per_pass * 1000)
        stop()
    sent = per_pass * passes
    print(
        f"{sent} webhooks, {calls} calls stored, load average {os.getloadavg()[0]:.1f}: CPU per webhook "
        f"{min(cpu):.2f} ms (lowest of {passes} passes: {', '.join(f'{c:.2f}' for c in cpu)})"
    )
    print(f"statements per webhook: {sum(statements.values()) / sent:.1f}", end="")
    print(f" ({', '.join(f'{name} {count / sent:.1f}' for name, count in sorted(statements.items()))})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls stored, one webhook each")
    parser.add_argument("--passes", type=int, default=5, help="passes the webhooks are sent in")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.passes))

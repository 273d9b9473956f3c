"""Benchmarks of callcheck's own overhead, as ratios against a baseline measured in the same process.

1. Placing a call: `POST /api/call` through callcheck (validate, store, dial, store the answer) against the bare
   outbound-call POST to the same sandbox. The ratio is callcheck's cost per placed call.
2. Paging the call history: a page deep in 10,000 stored calls (keyset cursor) against the first page. Keyset
   pagination should keep the ratio near 1 however deep the page.

Run: `.venv/bin/python bench/bench_api.py` (SQLite in a temp dir; `--postgres` for the local PostgreSQL). The call
budgets (CALLCHECK_MAX_CALLS_*) are set to 0, no limit: the bench places more calls a minute than they allow.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from run import stored_call

from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.domain.lifecycle import CallState
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.store.repo import new_id, utcnow

CALLS = 200
HISTORY = 10_000
PAGES = 50


def timed(samples: list[float]) -> str:
    p95 = sorted(samples)[int(len(samples) * 0.95)]
    return f"median {statistics.median(samples) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


async def main(database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp, SandboxServer(SandboxConfig(time_scale=100)) as sandbox:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=database_url,
            secret_key=SecretStr("bench-secret-key-0123456789-abcdefgh"),
            elevenlabs_api_key=SecretStr(sandbox.config.api_key),
            elevenlabs_agent_id=sandbox.config.agent_id,
            elevenlabs_agent_phone_number_id=sandbox.config.phone_number_id,
            elevenlabs_api_base=sandbox.url,
            workers=False,  # measure placing, not the followers polling in the background
            # The call budgets off (0 = no limit): the bench places 200 calls to one number within a minute.
            max_calls_per_minute=0,
            max_calls_per_day=0,
            max_calls_per_number_per_day=0,
        )
        app = create_app(settings)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://bench") as api,
            httpx.AsyncClient(base_url=sandbox.url) as raw,
        ):
            payload = {"to_number": "+15550100001", "business_description": "A pizza shop.", "scenario": "order"}
            direct = {
                "agent_id": sandbox.config.agent_id,
                "agent_phone_number_id": sandbox.config.phone_number_id,
                "to_number": "+15550100001",
            }
            headers = {"xi-api-key": sandbox.config.api_key}
            baseline, ours = [], []
            for _ in range(CALLS):  # interleaved, so both see the same machine load
                t = time.perf_counter()
                assert (
                    await raw.post("/v1/convai/twilio/outbound-call", json=direct, headers=headers)
                ).status_code == 200
                baseline.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert (await api.post("/api/call", json=payload)).status_code == 200
                ours.append(time.perf_counter() - t)
            print(f"place a call   baseline (bare upstream POST): {timed(baseline)}")
            print(f"               POST /api/call:                {timed(ours)}")
            print(f"               ratio (median): {statistics.median(ours) / statistics.median(baseline):.2f}")

            store = app.state.services.store
            for _ in range(HISTORY):
                await stored_call(store, CallState.COMPLETED, id=new_id(), simulated=True, created_at=utcnow())
            first, deep = [], []
            cursor = None
            page = (await api.get("/api/calls", params={"limit": 50})).json()
            for i in range(PAGES):
                t = time.perf_counter()
                await api.get("/api/calls", params={"limit": 50})
                first.append(time.perf_counter() - t)
                if i == 0:
                    # Walk to the deepest page once; later rounds re-read it.
                    cursor = page["next_cursor"]
                    while True:
                        nxt = (await api.get("/api/calls", params={"limit": 50, "cursor": cursor})).json()
                        if not nxt["next_cursor"]:
                            break
                        cursor = nxt["next_cursor"]
                t = time.perf_counter()
                await api.get("/api/calls", params={"limit": 50, "cursor": cursor})
                deep.append(time.perf_counter() - t)
            print(f"history page   first page of {HISTORY + CALLS} calls: {timed(first)}")
            print(f"               last page (keyset cursor):      {timed(deep)}")
            print(f"               ratio (median): {statistics.median(deep) / statistics.median(first):.2f}")


if __name__ == "__main__":
    url = None
    if "--postgres" in sys.argv:
        import uuid

        import psycopg

        name = f"callcheck_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    asyncio.run(main(url))

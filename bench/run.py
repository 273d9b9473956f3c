"""The whole benchmark harness of issue 13, in one command: every figure, as ratios against baselines measured in the
same run, printed as Markdown for bench/README.md.

    .venv/bin/python bench/run.py [--before REV] [--out results.md]

What it starts: a stand-in for ElevenLabs with 200 ms on every request (bench/standin.py), `callcheck serve`
processes on SQLite and on the local PostgreSQL (127.0.0.1:5432, user postgres), and a `callcheck serve --sandbox`
for the suite run. With `--before REV` the API-overhead and following figures are measured for that git revision too
(extracted to a temporary directory and run with the same interpreter), side by side with this tree's.

The call limits another change adds (CALLCHECK_MAX_CALLS_*) are set to 0 (no limit) for every server: the bench
places thousands of calls to one number within minutes. No test asserts any of these times.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import datetime as dt
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from callcheck.domain.lifecycle import CallState
from callcheck.providers.elevenlabs.webhooks import sign

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LATENCY_MS = 200.0
CLIENTS = 50
CALLS_EACH = 6
FOLLOWED = 1000
FOLLOWED_SMALL = 100
IDLE_WINDOW_S = 30.0  # at 1,000 calls; at 100, half of it
SETTLE_S = 10.0  # after placing, before a window: workflows started, the first sweeps fetched every call once
STARTUP_RUNS = 3
WEBHOOK_SECRET = "bench-webhook-secret"
VERDICT_SAMPLES = 60
SUITE_CALLS = 200
SUITE_CONCURRENCY = 20
SUITE_TIME_SCALE = 0.1
NO_LIMITS = {
    "CALLCHECK_MAX_CALLS_PER_DAY": "0",
    "CALLCHECK_MAX_CALLS_PER_MINUTE": "0",
    "CALLCHECK_MAX_CALLS_PER_NUMBER_PER_DAY": "0",
    "CALLCHECK_MAX_CALLS_PER_RUN": "0",
    # The stand-in's agent has no phone number of a known country: every number the bench dials is allowed by name.
    "CALLCHECK_ALLOWED_NUMBERS": "+15550100001",
}
PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."
TICK = os.sysconf("SC_CLK_TCK")
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else math.nan


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> float:
    """Seconds until GET /healthz answers 200, polled every 20 ms through one client.

    One client for all the polls: `httpx.get` makes a new client (and SSL context) each time, about 27 ms of CPU a
    poll, half a core at this rate, taken from the server starting on the same two cores (bench/README.md,
    "Start-up, session 12"). A poll through one client costs about a millisecond.
    """
    started = time.monotonic()
    with httpx.Client(timeout=2) as http:
        while time.monotonic() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}/healthz").status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.02)
    raise RuntimeError(f"{url} never became healthy")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    ready_s: float
    log: Path


@contextlib.contextmanager
def serving(env: dict[str, str], data_dir: Path, *args: str, source: Path | None = None) -> Iterator[Server]:
    """A `callcheck serve` subprocess (of `source`'s src/ when given), stopped with SIGINT at the end."""
    port = free_port()
    full = {**os.environ, **NO_LIMITS, **env, "CALLCHECK_DATA_DIR": str(data_dir)}
    full["CALLCHECK_SECRET_KEY"] = "bench-secret-key-0123456789-abcdefghij"
    if source is not None:
        full["PYTHONPATH"] = str(source / "src")
    log = data_dir / "serve.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [PYTHON, "-c", "from callcheck.cli import main; main()", "serve", "--port", str(port)]
    command += ["--log-level", "warning", *args]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=full, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_healthy(url, process)
        yield Server(process, url, ready, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def upstream_env(standin: str) -> dict[str, str]:
    return {
        "ELEVENLABS_API_KEY": "bench-key",
        "ELEVENLABS_AGENT_ID": "agent_bench",
        "ELEVENLABS_AGENT_PHONE_NUMBER_ID": "phnum_bench",
        "ELEVENLABS_API_BASE": standin,
        "ELEVENLABS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def fresh_postgres() -> str:
    """A new empty PostgreSQL database on the local server; its URL. Dropped when the harness exits."""
    import sqlalchemy as sa

    name = f"bench_{os.getpid()}_{time.monotonic_ns()}"
    engine = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    atexit.register(drop_postgres, name)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres(name: str) -> None:
    """Drop a bench database (its servers are stopped by then; FORCE ends any connection left)."""
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except sa.exc.SQLAlchemyError as exc:
        print(f"could not drop {name}: {exc}", file=sys.stderr)
    finally:
        engine.dispose()


async def stored_call(store: Any, state: CallState, **fields: Any) -> Any:
    """A call written straight to the store (no dial): what bench scripts need many of, with placeholder text."""
    defaults: dict[str, Any] = {
        "origin": "api",
        "to_number": "+15550100001",
        "business_description": "A pizza shop.",
        "scenario": "order",
        "prompt": "p",
        "first_message": "f",
        "request_payload": {},
    }
    return await store.create_call(state=state.value, **{**defaults, **fields})


# -- 1. API overhead --------------------------------------------------------------------------------------------


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else math.nan


async def load(url: str, path: str, body: Any, clients: int, each: int, keep: bool = False) -> Load:
    """`clients` concurrent clients each POSTing `each` requests one after the other."""
    result = Load()
    headers = {"xi-api-key": "bench-key"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers) as http:

        async def client(i: int) -> None:
            for j in range(each):
                payload = body(i, j) if callable(body) else body
                started = time.perf_counter()
                try:
                    answer = await http.post(path, json=payload)
                except httpx.HTTPError:
                    result.errors += 1
                    continue
                result.latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    result.errors += 1
                elif keep:
                    result.results.append(answer.json())

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        result.seconds = time.perf_counter() - started
    return result


def merged(loads: list[Load]) -> Load:
    out = Load()
    for one in loads:
        out.latencies += one.latencies
        out.errors += one.errors
        out.seconds += one.seconds
    return out


DIRECT_BODY = {
    "agent_id": "agent_bench",
    "agent_phone_number_id": "phnum_bench",
    "to_number": "+15550100001",
    "conversation_initiation_client_data": {
        "conversation_config_override": {"agent": {"prompt": {"prompt": "P"}, "first_message": "Hi"}},
        "user_id": "bench",
    },
}
API_BODY = {"to_number": "+15550100001", "business_description": PIZZA, "scenario": "order a pizza"}


async def api_overhead(server: Server, standin: str) -> dict[str, Any]:
    """Direct upstream vs callcheck, interleaved twice; callcheck's CPU per placed call."""
    await load(server.url, "/api/call", API_BODY, 10, 2)  # warm-up: connections, first imports
    await load(standin, "/v1/convai/twilio/outbound-call", DIRECT_BODY, 10, 2)
    direct: list[Load] = []
    ours: list[Load] = []
    cpu = 0.0
    for _ in range(2):
        direct.append(await load(standin, "/v1/convai/twilio/outbound-call", DIRECT_BODY, CLIENTS, CALLS_EACH))
        before = cpu_seconds(server.process.pid)
        ours.append(await load(server.url, "/api/call", API_BODY, CLIENTS, CALLS_EACH))
        cpu += cpu_seconds(server.process.pid) - before
    d, o = merged(direct), merged(ours)
    return {
        "direct": d,
        "ours": o,
        "cpu_ms_per_call": cpu / max(1, len(o.latencies)) * 1000,
    }


@contextlib.contextmanager
def floor_server(standin: str) -> Iterator[Server]:
    """bench/floor.py: the same stack (uvicorn, FastAPI, pydantic, httpx) placing the call with none of callcheck's
    work (no database, no workflow, no middleware)."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "floor.py"), "--port", str(port), "--upstream", standin],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield Server(process, url, wait_healthy(url, process), Path(os.devnull))
    finally:
        process.terminate()
        process.wait()


def overhead_rows(label: str, figures: dict[str, Any]) -> list[str]:
    d: Load = figures["direct"]
    o: Load = figures["ours"]
    p50d, p99d = pct(d.latencies, 0.5) * 1000, pct(d.latencies, 0.99) * 1000
    p50o, p99o = pct(o.latencies, 0.5) * 1000, pct(o.latencies, 0.99) * 1000
    return [
        f"| {label}: direct upstream | {p50d:,.0f} ms | {p99d:,.0f} ms | {d.rate:,.1f} | 1.00 | {d.errors} | |",
        f"| {label}: `POST /api/call` | {p50o:,.0f} ms (+{p50o - p50d:,.0f}) | {p99o:,.0f} ms (+{p99o - p99d:,.0f}) "
        f"| {o.rate:,.1f} | **{o.rate / d.rate:.2f}** | {o.errors} | {figures['cpu_ms_per_call']:.1f} ms |",
    ]


# -- 5. following at scale, 3. verdict latency, 4. webhook ingestion -----------------------------------------------


async def stand_in_counts(standin: str) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        counts: dict[str, int] = (await http.get(f"{standin}/_standin/stats")).json()["counts"]
        return counts


async def idle_window(server: Server, standin: str, seconds: float) -> dict[str, float]:
    """CPU share of one core and upstream requests per minute over a window where no call changes."""
    counts = await stand_in_counts(standin)
    cpu, started = cpu_seconds(server.process.pid), time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server.process.pid) - cpu
    after = await stand_in_counts(standin)
    requests = {k: after.get(k, 0) - counts.get(k, 0) for k in ("list", "get", "audio", "outbound")}
    return {
        "cpu_pct": cpu / elapsed * 100,
        "req_per_min": sum(requests.values()) / elapsed * 60,
        "list_per_min": requests["list"] / elapsed * 60,
        "get_per_min": requests["get"] / elapsed * 60,
        "rss_mb": rss_mb(server.process.pid),
    }


def webhook_body(call: dict[str, Any]) -> bytes:
    now = int(time.time())
    event = {
        "type": "post_call_transcription",
        "event_timestamp": now,
        "data": {
            "agent_id": "agent_follow",
            "conversation_id": call["conversation_id"],
            "status": "done",
            "user_id": call["id"],
            # Required in every post-call payload (contract §5.4); the stand-in's conversations have no audio.
            "has_audio": False,
            "transcript": [
                {"role": "agent", "message": "Hi, I'd like to order a pizza.", "time_in_call_secs": 0},
                {"role": "user", "message": "Sure, your order number is 4821.", "time_in_call_secs": 3},
            ],
            "metadata": {"start_time_unix_secs": now - 30, "call_duration_secs": 30, "termination_reason": "end"},
            "analysis": {
                "call_successful": "success",
                "transcript_summary": "The pizza was ordered.",
                "evaluation_criteria_results": {},
                "data_collection_results": {},
            },
        },
    }
    return json.dumps(event).encode()


async def post_webhook(http: httpx.AsyncClient, call: dict[str, Any]) -> httpx.Response:
    body = webhook_body(call)
    headers = {"ElevenLabs-Signature": sign(WEBHOOK_SECRET, body), "Content-Type": "application/json"}
    return await http.post("/api/webhooks/elevenlabs", content=body, headers=headers)


async def verdict_latency(server: Server, calls: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Webhook sent → verdict on GET /api/calls/{id}, and → `state: completed` on the call's events stream."""
    api: list[float] = []
    stream: list[float] = []
    floor: list[float] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for call in calls:
            seen = asyncio.get_running_loop().create_future()
            opened = asyncio.Event()

            async def watch(call_id: str, seen: asyncio.Future[float], opened: asyncio.Event) -> None:
                async with http.stream("GET", f"/api/calls/{call_id}/events") as response:
                    opened.set()
                    event = ""
                    async for line in response.aiter_lines():
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and event == "state" and '"completed"' in line:
                            seen.set_result(time.perf_counter())
                            return

            watcher = asyncio.ensure_future(watch(call["id"], seen, opened))
            await opened.wait()
            await asyncio.sleep(0.05)  # the stream has told what was there before
            started = time.perf_counter()
            answer = await post_webhook(http, call)
            assert answer.status_code == 200, answer.text
            while True:
                detail = (await http.get(f"/api/calls/{call['id']}")).json()
                if (detail.get("analysis") or {}).get("call_successful") == "success":
                    api.append(time.perf_counter() - started)
                    break
            stream.append(await asyncio.wait_for(seen, 30) - started)
            await watcher
            started = time.perf_counter()
            await http.get("/healthz")
            floor.append(time.perf_counter() - started)
    return {"api": api, "stream": stream, "floor": floor}


async def ingestion(server: Server, calls: list[dict[str, Any]]) -> dict[str, float]:
    """Signed webhooks for every call, 20 at once: accepted per second; how many calls show their verdict after."""
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        queue = list(calls)
        accepted = 0

        async def sender() -> None:
            nonlocal accepted
            while queue:
                answer = await post_webhook(http, queue.pop())
                if answer.status_code == 200 and answer.json().get("matched"):
                    accepted += 1

        started, cpu = time.perf_counter(), cpu_seconds(server.process.pid)
        await asyncio.gather(*(sender() for _ in range(20)))
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(server.process.pid) - cpu
        # The floor: the same number of GET /healthz, 20 at once.
        pending = len(calls)

        async def pinger() -> None:
            nonlocal pending
            while pending > 0:
                pending -= 1
                await http.get("/healthz")

        started = time.perf_counter()
        await asyncio.gather(*(pinger() for _ in range(20)))
        floor_seconds = time.perf_counter() - started
        completed = 0
        cursor = None
        while True:
            params: dict[str, Any] = {"status": "completed", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/api/calls", params=params)).json()
            completed += len(page["calls"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    return {
        "sent": len(calls),
        "accepted": accepted,
        "per_s": accepted / seconds,
        "healthz_per_s": len(calls) / floor_seconds,
        "completed": completed,
        # The server's CPU (every thread) while the webhooks were sent, per webhook accepted: the request and what
        # its answer set in motion meanwhile (the call's workflow going on).
        "cpu_ms": cpu / max(1, accepted) * 1000,
        "cpu_pct": cpu / seconds * 100,
    }


async def following(server: Server, standin: str, small_first: bool) -> dict[Any, Any]:
    """Place calls that ring and never change; measure the server between changes at 100 and at 1,000 calls."""
    figures: dict[Any, Any] = {}
    placed: list[dict[str, Any]] = []
    # The code before this change is followed with 100 calls only: its cost grows with each call (one poll loop each).
    sizes = [FOLLOWED_SMALL, FOLLOWED] if small_first else [FOLLOWED_SMALL]
    for size in sizes:
        more = size - len(placed)
        each = max(1, more // CLIENTS)
        result = await load(server.url, "/api/call", API_BODY, min(CLIENTS, more), each, keep=True)
        placed += result.results
        await asyncio.sleep(SETTLE_S)
        figures[size] = await idle_window(server, standin, IDLE_WINDOW_S if size == FOLLOWED else IDLE_WINDOW_S / 2)
        print(f"  following {size}: {figures[size]}", file=sys.stderr)
    figures["calls"] = placed
    return figures


@dataclass
class Following:
    """Figures 5, 3 and 4 of a run: following at scale, then verdicts and ingestion on the same calls."""

    rows: list[str] = field(default_factory=list)
    verdicts: dict[str, list[float]] = field(default_factory=dict)
    ingest: dict[str, float] = field(default_factory=dict)
    ingest_before: dict[str, float] = field(default_factory=dict)

    async def measure(self, label: str, source: Path | None, env: dict[str, str], standin: str, tmp: Path) -> None:
        async with httpx.AsyncClient() as http:
            await http.post(f"{standin}/_standin/reset")
        # An agent of its own: the calls of figure 1 (the same stand-in) are not on its conversations list.
        agent = {"ELEVENLABS_AGENT_ID": f"agent_follow_{label[:6]}"}
        with serving({**env, **agent}, tmp / f"follow-{label[:6]}", source=source) as server:
            figures = await following(server, standin, small_first=source is None)
            for size in (FOLLOWED_SMALL, FOLLOWED):
                if size in figures:
                    f = figures[size]
                    self.rows.append(
                        f"| {label}, {size:,} calls ringing | {f['cpu_pct']:.1f}% | {f['req_per_min']:,.1f} "
                        f"({f['list_per_min']:,.1f} list, {f['get_per_min']:,.1f} get) "
                        f"| {f['rss_mb']:,.0f} MB |"
                    )
            if source is None:
                calls = figures["calls"]
                self.verdicts = await verdict_latency(server, calls[:VERDICT_SAMPLES])
                print(f"  verdicts: {self.verdicts}", file=sys.stderr)
                self.ingest = await ingestion(server, calls[VERDICT_SAMPLES:])
                print(f"  ingestion: {self.ingest}", file=sys.stderr)
            else:
                # The code before, on its 100 calls: the same webhooks, for a same-run ratio.
                self.ingest_before = await ingestion(server, figures["calls"])
                print(f"  ingestion before: {self.ingest_before}", file=sys.stderr)


# -- 2. suite wall time ---------------------------------------------------------------------------------------


async def suite_run(server: Server, calls: int, concurrency: int) -> tuple[float, list[float]]:
    suite = {
        "business": PIZZA,
        "number": "+15550100001",
        "defaults": {"expect": [{"final_state": "completed"}]},
        "scenarios": [
            {"name": f"order-{i}", "goal": "order a large pepperoni pizza", "repeat": min(100, calls - i * 100)}
            for i in range(math.ceil(calls / 100))
        ],
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        started = time.perf_counter()
        answer = await http.post("/api/runs", params={"concurrency": concurrency}, json=suite)
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        while True:
            run = (await http.get(f"/api/runs/{run_id}")).json()
            if run.get("exit_code") is not None:
                break
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - started
        lengths = []
        for item in run.get("calls") or run.get("items") or []:
            call_id = item.get("call_id") or (item.get("call") or {}).get("id")
            if call_id:
                detail = (await http.get(f"/api/calls/{call_id}")).json()
                if detail.get("ended_at"):
                    created = dt.datetime.fromisoformat(detail["created_at"])
                    lengths.append((dt.datetime.fromisoformat(detail["ended_at"]) - created).total_seconds())
    return wall, lengths


# -- 7. several processes ----------------------------------------------------------------------------------------


async def two_processes(env: dict[str, str], tmp: Path) -> dict[str, float]:
    """Calls placed per second through POST /api/call by one server, then by two servers on one PostgreSQL database
    (the same clients split between them), each on a fresh database."""
    rates: dict[str, float] = {}
    one_env = {**env, "CALLCHECK_DATABASE_URL": fresh_postgres()}
    with serving(one_env, tmp / "p1") as server:
        await load(server.url, "/api/call", API_BODY, 10, 2)  # warm-up
        rates["one"] = (await load(server.url, "/api/call", API_BODY, CLIENTS, CALLS_EACH)).rate
    two_env = {**env, "CALLCHECK_DATABASE_URL": fresh_postgres()}
    with serving(two_env, tmp / "p2a") as first, serving(two_env, tmp / "p2b") as second:
        for server in (first, second):
            await load(server.url, "/api/call", API_BODY, 10, 2)
        started = time.perf_counter()
        halves = await asyncio.gather(
            load(first.url, "/api/call", API_BODY, CLIENTS // 2, CALLS_EACH),
            load(second.url, "/api/call", API_BODY, CLIENTS - CLIENTS // 2, CALLS_EACH),
        )
        seconds = time.perf_counter() - started
        rates["two"] = sum(len(h.latencies) for h in halves) / seconds
        rates["errors"] = sum(h.errors for h in halves)
    return rates


# -- 6. start-up ------------------------------------------------------------------------------------------------


def startup() -> dict[str, float]:
    def timed(command: list[str]) -> float:
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, **NO_LIMITS})
        return time.perf_counter() - started

    bare = statistics.median(timed([PYTHON, "-c", "pass"]) for _ in range(STARTUP_RUNS))
    cli = [PYTHON, "-c", "from callcheck.cli import main; main()", "--help"]
    helps = statistics.median(timed(cli) for _ in range(STARTUP_RUNS))
    return {"python": bare, "help": helps}


# -- the run ----------------------------------------------------------------------------------------------------


def start_standin() -> tuple[subprocess.Popen[bytes], str]:
    """bench/standin.py with LATENCY_MS on every request, answering; (its process, its URL)."""
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "bench" / "standin.py"), "--port", str(port), "--latency-ms", str(LATENCY_MS)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/_standin/stats")
            return process, url
        time.sleep(0.1)
    raise RuntimeError("the stand-in never answered")


def extract(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def ingestion_lines(ingest: dict[str, float], ingest_before: dict[str, float], before_rev: str | None) -> list[str]:
    """Figure 4's Markdown."""
    lines: list[str] = []
    say = lines.append
    if not ingest:
        return lines
    say("")
    say("### 4. Webhook ingestion: signed post_call_transcription webhooks, 20 at once, each for its own call")
    say("")
    say(
        f"{ingest['accepted']:.0f} of {ingest['sent']:.0f} accepted and matched, **{ingest['per_s']:.0f}/s** "
        f"({ingest['per_s'] / ingest['healthz_per_s']:.2f} of the {ingest['healthz_per_s']:.0f}/s of "
        f"`GET /healthz` at the same concurrency); calls completed afterwards: {ingest['completed']:.0f} "
        f"(the {VERDICT_SAMPLES} of figure 3 included). Target: ≥ 300/s, none lost."
    )
    if ingest_before:
        say(
            f"Before ({before_rev}), the same webhooks for its {ingest_before['sent']:.0f} calls: "
            f"{ingest_before['accepted']:.0f} accepted and matched, **{ingest_before['per_s']:.0f}/s** "
            f"({ingest_before['per_s'] / ingest_before['healthz_per_s']:.2f} of its `GET /healthz` "
            f"{ingest_before['healthz_per_s']:.0f}/s)."
        )
    return lines


async def main(before_rev: str | None, out: Path | None, skip: set[str]) -> None:
    lines: list[str] = []
    say = lines.append
    began = time.monotonic()
    costs: dict[str, float] = {}  # what each section took, seconds

    def cost(section: str, since: float) -> None:
        costs[section] = costs.get(section, 0.0) + time.monotonic() - since
        print(f"[{time.monotonic() - began:.0f}s] {section} done", file=sys.stderr)

    load_avg = os.getloadavg()
    say(f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: {os.cpu_count()} CPUs, ")
    say(f"{platform.platform()}, Python {platform.python_version()}; load average at start {load_avg[0]:.1f}.")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        before = extract(before_rev, tmp / "before") if before_rev else None
        standin_process, standin = await asyncio.to_thread(start_standin)
        readies: dict[str, float] = {}  # figure 1's servers, each on a fresh data directory or database
        processes: dict[str, float] = {}
        try:
            env = upstream_env(standin)

            # 1. API overhead
            overhead: list[str] = []
            configs: list[tuple[str, dict[str, str], Path | None]] = [("SQLite", {}, None)]
            if "postgres" not in skip:
                configs.append(("PostgreSQL", {"CALLCHECK_DATABASE_URL": fresh_postgres()}, None))
            if before is not None:
                configs.append((f"SQLite, before ({before_rev})", {}, before))
            for label, extra, source in configs:
                section = time.monotonic()
                data = tmp / f"api-{len(overhead)}"
                with serving({**env, **extra}, data, source=source) as server:
                    if source is None:  # this tree's: the code before (--before) is not what figure 6 is about
                        readies[label] = server.ready_s
                    overhead += overhead_rows(label, await api_overhead(server, standin))
                print("\n".join(overhead[-2:]), file=sys.stderr)
                cost(f"1. API overhead, {label}", section)
            # The floor: the same stack placing the call with none of callcheck's work.
            section = time.monotonic()
            with floor_server(standin) as bare_stack:
                overhead += overhead_rows("the stack alone (bench/floor.py)", await api_overhead(bare_stack, standin))
            print("\n".join(overhead[-2:]), file=sys.stderr)
            cost("1. API overhead, the stack alone", section)

            # 5, 3, 4: following, then verdicts and ingestion on the same 1,000 calls
            follow_configs: list[tuple[str, Path | None]] = [("after", None)]
            if before is not None and "before-following" not in skip:
                follow_configs.append((f"before ({before_rev})", before))
            scale = Following()
            for label, source in follow_configs:
                section = time.monotonic()
                await scale.measure(label, source, env, standin, tmp)
                cost(f"5, 3, 4. following, verdicts, ingestion: {label}", section)
            follow_rows, verdicts, ingest, ingest_before = scale.rows, scale.verdicts, scale.ingest, scale.ingest_before
            # 7. one and two processes on one PostgreSQL database (docs/production.md)
            if "postgres" not in skip and "processes" not in skip:
                section = time.monotonic()
                processes = await two_processes(env, tmp)
                print(f"  processes: {processes}", file=sys.stderr)
                cost("7. one and two processes", section)
        finally:
            standin_process.terminate()
            standin_process.wait()

        # 2. suite wall time, against the sandbox (calls of a fixed simulated length, webhooks back to the server)
        suite: dict[str, Any] = {}
        if "suite" not in skip:
            section = time.monotonic()
            sandbox_env = {"CALLCHECK_SANDBOX_TIME_SCALE": str(SUITE_TIME_SCALE)}
            with serving(sandbox_env, tmp / "suite", "--sandbox") as server:
                one_wall, one_lengths = await suite_run(server, 1, 1)
                wall, lengths = await suite_run(server, SUITE_CALLS, SUITE_CONCURRENCY)
                suite = {"one": one_wall, "one_length": one_lengths, "wall": wall, "lengths": lengths}
                print(f"  suite: one {one_wall:.2f} s, all {wall:.2f} s", file=sys.stderr)
            cost("2. suite", section)

        section = time.monotonic()
        starts = startup()
        cost("6. start-up", section)

    if processes:
        say("")
        say(
            f"### 7. One and two processes on one PostgreSQL database: POST /api/call, {CLIENTS} clients x {CALLS_EACH}"
        )
        say("")
        say("| processes | calls/s | ratio |")
        say("|---|---|---|")
        say(f"| one `callcheck serve` | {processes['one']:.1f} | 1.00 |")
        two = processes["two"] / processes["one"]
        say(f"| two, clients split between them | {processes['two']:.1f} | **{two:.2f}** |")
        say(f"(errors with two: {processes['errors']:.0f})")

    say("")
    say(
        f"### 1. API overhead: {CLIENTS} clients x {CALLS_EACH} calls, twice, interleaved; {LATENCY_MS:.0f} ms upstream"
    )
    say("")
    say("| path | p50 | p99 | calls/s | vs direct | errors | server CPU per call |")
    say("|---|---|---|---|---|---|---|")
    lines += overhead
    say("")
    say("Target: ≤ +5 ms at p50, ≤ +20 ms at p99, ≥ 0.95 of direct throughput, 0 errors.")
    if suite:
        ideal = math.ceil(SUITE_CALLS / SUITE_CONCURRENCY) * suite["one"]
        simulated = 28 * SUITE_TIME_SCALE  # ring 3 s + 22 s in call + 3 s processing, simulated, times the time scale
        say("")
        say(f"### 2. Suite wall time: {SUITE_CALLS} calls, concurrency {SUITE_CONCURRENCY}")
        say("")
        say("| what | seconds | ratio |")
        say("|---|---|---|")
        say(f"| one call alone, the same way (T, the baseline) | {suite['one']:.2f} | |")
        say(f"| ceil({SUITE_CALLS}/{SUITE_CONCURRENCY}) · T (ideal) | {ideal:.1f} | 1.00 |")
        say(f"| the run of {SUITE_CALLS} | {suite['wall']:.1f} | **{suite['wall'] / ideal:.3f}** |")
        say(
            f"| against the simulated length alone ({simulated:.1f} s a call) | {10 * simulated:.1f} | "
            f"{suite['wall'] / (10 * simulated):.3f} |"
        )
        if suite["lengths"]:
            say(f"| median call length, created → ended | {statistics.median(suite['lengths']):.2f} | |")
        say("")
        say("Target: ≤ 1.05.")
    if verdicts:
        say("")
        say(f"### 3. Verdict latency: webhook sent → verdict visible ({len(verdicts['api'])} calls, one at a time)")
        say("")
        say("| where | p50 | p99 | p99 vs a GET /healthz round trip |")
        say("|---|---|---|---|")
        floor = pct(verdicts["floor"], 0.99)
        for key, name in (("api", "`GET /api/calls/{id}`"), ("stream", "events stream `state`")):
            p50, p99 = pct(verdicts[key], 0.5) * 1000, pct(verdicts[key], 0.99) * 1000
            say(f"| {name} | {p50:.0f} ms | {p99:.0f} ms | {pct(verdicts[key], 0.99) / floor:.1f} |")
        say(f"| (`GET /healthz`) | {pct(verdicts['floor'], 0.5) * 1000:.0f} ms | {floor * 1000:.0f} ms | 1.0 |")
        say("")
        say("Target: p99 ≤ 250 ms.")
    lines += ingestion_lines(ingest, ingest_before, before_rev)
    say("")
    say(
        f"### 5. Following at scale: calls ringing, nothing changing; a {IDLE_WINDOW_S:.0f} s window "
        f"({IDLE_WINDOW_S / 2:.0f} s at 100)"
    )
    say("")
    say("| server | CPU (one core = 100%) | upstream requests/min | RSS |")
    say("|---|---|---|---|")
    lines += follow_rows
    say("")
    say("Target: CPU ≤ 10%, requests/min independent of the number of calls, RSS ≤ 200 MB.")
    say("")
    say(f"### 6. Start-up (median of {STARTUP_RUNS}; serve: until /healthz answers, each server of this run)")
    say("")
    say("| what | seconds | vs `python -c pass` |")
    say("|---|---|---|")
    say(f"| `python -c pass` | {starts['python']:.2f} | 1.0 |")
    say(f"| `callcheck --help` | {starts['help']:.2f} | {starts['help'] / starts['python']:.1f} |")
    if readies:
        each = ", ".join(f"{label} {ready:.2f}" for label, ready in readies.items())
        median = statistics.median(readies.values())
        say(f"| `callcheck serve` ready, fresh (median of {len(readies)}: {each}) | {median:.2f} | |")
    say("")
    say("Targets: `--help` ≤ 0.5 s, serve ready ≤ 2 s.")
    say("")
    say("| section | seconds |")
    say("|---|---|")
    for name, seconds in costs.items():
        say(f"| {name} | {seconds:.0f} |")
    say(f"| the whole harness | {time.monotonic() - began:.0f} |")
    text = "\n".join(lines)
    print(text)
    if out:
        await asyncio.to_thread(out.write_text, text + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git revision to measure too, side by side (API overhead, following)")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    parser.add_argument("--skip", action="append", default=[], help="postgres | suite | before-following | processes")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.before, arguments.out, set(arguments.skip)))

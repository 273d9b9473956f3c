"""The live events stream (SSE) resumes where a client left off and ends cleanly on shutdown; HEAD where GET is;
the recording's byte ranges refused in the API's JSON error shape."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer, SteppedClock, delayed_answer_number
from tests.conftest import backend_env, settings_for
from tests.servers import HTTP_TIMEOUT_S, free_port, sandbox_env, serve_process, wait_healthy
from tests.waiting import step_through_completed_call, wait_for_call, wait_for_call_sync

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."
# The stored event kinds the stream tells of; each of these messages carries its stored event's id.
TOLD_KINDS = {"state", "transcript", "recording"}


@dataclass
class Message:
    """One SSE message as a client sees it."""

    event: str = "message"
    data: Any = None
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


def parse_sse(lines: Iterable[str]) -> list[Message]:
    """SSE lines into messages (blank line ends one), as EventSource reads them."""
    messages: list[Message] = []
    current = Message()
    seen_any = False
    for line in lines:
        if line == "":
            if seen_any:
                messages.append(current)
            current, seen_any = Message(), False
            continue
        seen_any = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = json.loads(value)
        elif name == "id":
            current.id = value
        elif name == "retry":
            current.retry = int(value)
    if seen_any:
        messages.append(current)
    return messages


def told(messages: list[Message]) -> list[Message]:
    """The messages other than pings and comments."""
    return [m for m in messages if m.data is not None]


async def read_stream(
    api: httpx.AsyncClient, call_id: str, headers: dict[str, str] | None = None, **params: Any
) -> list[Message]:
    async with api.stream("GET", f"/api/calls/{call_id}/events", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return told(parse_sse([line async for line in response.aiter_lines()]))


async def place(api: httpx.AsyncClient, number: str) -> str:
    response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    return await client_for(settings_for(sandbox, tmp_path))


@pytest.fixture
async def finished(api: httpx.AsyncClient) -> dict[str, Any]:
    """A completed call with its transcript and recording, as GET /api/calls/{id} returns it."""
    return await wait_for_call(api, await place(api, "+15550100001"), recording=True)


def told_ids(call: dict[str, Any]) -> list[str]:
    return [str(e["id"]) for e in call["events"] if e["kind"] in TOLD_KINDS]


# -- ids, end ----------------------------------------------------------------------------------------------------


async def test_every_stored_event_is_told_with_its_id_and_end_is_the_whole_call(
    client_for: Any, stepped_sandbox: SandboxServer, clock: SteppedClock, tmp_path: Path
) -> None:
    # Stepped through every state, so the call is stored with a transcript in three parts (on the real clock a poll
    # may catch it only once the call is over, the whole transcript at once).
    api = await client_for(settings_for(stepped_sandbox, tmp_path))
    finished = await step_through_completed_call(api, await place(api, "+15550100001"), clock)
    messages = await read_stream(api, finished["id"])
    assert [m.event for m in messages].count("end") == 1 and messages[-1].event == "end"
    body = messages[:-1]
    assert {m.event for m in body} == TOLD_KINDS
    # Every message but `end` carries the id of the stored event it tells of, in the stored order.
    assert [m.id for m in body] == told_ids(finished)
    kinds = {str(e["id"]): e["kind"] for e in finished["events"]}
    assert all(kinds[str(m.id)] == m.event for m in body)
    assert [m.data["state"] for m in body if m.event == "state"][-1] == "completed"
    # The transcript arrives in pieces that add up to the whole, each saying where its turns go.
    pieces = [m.data for m in body if m.event == "transcript"]
    assert [(p["from"], len(p["turns"])) for p in pieces] == [(0, 1), (1, 2), (3, 3)]
    assert [t for piece in pieces for t in piece["turns"]] == finished["transcript"]
    assert [p["from"] for p in pieces] == [sum(len(p["turns"]) for p in pieces[:i]) for i in range(len(pieces))]
    assert [m.data for m in body if m.event == "recording"] == [{"recording_url": finished["recording_url"]}]
    # `end` is the call exactly as GET /api/calls/{id} returns it, its events included.
    end = messages[-1]
    assert end.id is None
    assert end.data == (await api.get(f"/api/calls/{finished['id']}")).json()
    assert end.data["events"] == finished["events"] and end.data["events"]


# -- resuming ----------------------------------------------------------------------------------------------------


async def test_last_event_id_resumes_after_the_last_event_seen(
    api: httpx.AsyncClient, finished: dict[str, Any]
) -> None:
    everything = await read_stream(api, finished["id"])
    ids = [m.id for m in everything[:-1]]
    for cut, last_seen in enumerate(ids):
        resumed = await read_stream(api, finished["id"], headers={"Last-Event-ID": str(last_seen)})
        assert [m.id for m in resumed[:-1]] == ids[cut + 1 :], f"resumed after {last_seen}"
        assert [(m.event, m.data) for m in resumed] == [(m.event, m.data) for m in everything[cut + 1 :]]
    # A reconnect after the very last event only gets `end`.
    resumed = await read_stream(api, finished["id"], headers={"Last-Event-ID": str(ids[-1])})
    assert [m.event for m in resumed] == ["end"] and resumed[0].data["state"] == "completed"


async def test_after_query_resumes_like_the_header_and_the_header_wins(
    api: httpx.AsyncClient, finished: dict[str, Any]
) -> None:
    everything = await read_stream(api, finished["id"])
    ids = [m.id for m in everything[:-1]]
    middle = ids[len(ids) // 2]
    by_query = await read_stream(api, finished["id"], after=middle)
    by_header = await read_stream(api, finished["id"], headers={"Last-Event-ID": str(middle)})
    assert [m.id for m in by_query] == [m.id for m in by_header] == [*ids[len(ids) // 2 + 1 :], None]
    # A reconnecting EventSource keeps its URL's ?after= and sends the newer Last-Event-ID: the header counts.
    both = await read_stream(api, finished["id"], headers={"Last-Event-ID": str(ids[-2])}, after=ids[0])
    assert [m.id for m in both] == [ids[-1], None]


@pytest.mark.parametrize(
    ("headers", "params", "wanted"),
    [
        ({"Last-Event-ID": "abc"}, {}, "Last-Event-ID must be"),
        ({"Last-Event-ID": "-3"}, {}, "Last-Event-ID must be"),
        ({"Last-Event-ID": "9" * 20}, {}, "Last-Event-ID must be"),
        ({"Last-Event-ID": "9" * 5000}, {}, "Last-Event-ID must be"),
        ({}, {"after": "-1"}, "after"),
        ({}, {"after": "9" * 20}, "after"),
        ({}, {"after": "x"}, "after"),
    ],
)
async def test_a_bad_resume_point_is_a_json_error(
    api: httpx.AsyncClient, finished: dict[str, Any], headers: dict[str, str], params: dict[str, str], wanted: str
) -> None:
    response = await api.get(f"/api/calls/{finished['id']}/events", headers=headers, params=params)
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"] and wanted in body["error"]


# -- shutdown ----------------------------------------------------------------------------------------------------


def read_until(lines: Iterable[str], stop: Any) -> list[Message]:
    """Messages from `lines` until one satisfies `stop` (included), or until the stream ends."""
    messages: list[Message] = []
    pending: list[str] = []
    for line in lines:
        pending.append(line)
        if line == "":
            messages.extend(parse_sse(pending))
            pending = []
            if messages and stop(messages[-1]):
                break
    messages.extend(parse_sse(pending))
    return messages


@pytest.mark.e2e
def test_sigterm_ends_an_open_stream_cleanly_and_a_reconnect_resumes(tmp_path: Path) -> None:
    # The line rings until the test moves the sandbox's clock: the stream is open and mid-call when the server
    # stops, however long the server takes to start. (On the real clock it rang for 5 s, which a server starting on
    # a loaded machine could outlast: the call then ended before the SIGTERM, and the stream told its `end`.)
    clock = SteppedClock()
    with SandboxServer(SandboxConfig(time_scale=1.0, clock=clock)) as sandbox:
        env = {
            **sandbox_env(sandbox),
            "CALLCHECK_DATA_DIR": str(tmp_path / "data"),
            "CALLCHECK_POLL_INITIAL_S": "0.1",
            "CALLCHECK_POLL_MAX_S": "0.3",
            **backend_env(),
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / f"serve-{port}.log"
        first = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=first)
            placed = httpx.post(
                f"{url}/api/call",
                json={"to_number": delayed_answer_number(50), "business_description": PIZZA},
                timeout=HTTP_TIMEOUT_S,
            )
            assert placed.status_code == 200, placed.text
            call_id = placed.json()["id"]
            with httpx.stream("GET", f"{url}/api/calls/{call_id}/events", timeout=30) as response:
                lines = response.iter_lines()
                before = read_until(lines, lambda m: m.event == "state" and m.data["state"] == "ringing")
                assert before[-1].event == "state"
                first.send_signal(signal.SIGTERM)
                # The response is completed (an unfinished chunked body would raise RemoteProtocolError here),
                # with a farewell telling EventSource how soon to come back, and no `end`: the call goes on.
                after = read_until(lines, lambda m: False)
            # uvicorn re-raises the signal once it has shut down gracefully: a clean exit reads -SIGTERM.
            assert first.wait(timeout=30) in (0, -signal.SIGTERM)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(timeout=10)
        farewell = [m for m in after if m.data is None]
        assert farewell and farewell[-1].retry is not None and farewell[-1].comments
        assert "end" not in [m.event for m in before + after]
        served = log.read_text()
        assert "ASGI callable returned without completing response" not in served, served
        assert "Traceback" not in served, served
        seen = told(before + after)
        last_seen = seen[-1].id
        assert last_seen is not None

        # What EventSource does next: reconnect with Last-Event-ID, to a restarted server, and pick up from there.
        second = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=second)
            clock.advance(1000.0)  # past the answer at 50 s and the whole conversation after it
            with httpx.stream(
                "GET", f"{url}/api/calls/{call_id}/events", headers={"Last-Event-ID": last_seen}, timeout=60
            ) as response:
                assert response.status_code == 200
                resumed = told(read_until(response.iter_lines(), lambda m: m.event == "end"))
            call = wait_for_call_sync(url, call_id, {"completed"}, recording=True)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
    assert resumed[-1].event == "end" and resumed[-1].data["state"] == "completed"
    assert all(int(str(m.id)) > int(last_seen) for m in resumed[:-1])
    # Nothing told twice, nothing missing: the two streams together tell every stored event once, in order.
    assert [m.id for m in seen + resumed[:-1]] == told_ids(resumed[-1].data)
    assert told_ids(resumed[-1].data) == told_ids(call)
    states = [m.data["state"] for m in seen + resumed if m.event == "state"]
    assert states[:2] == ["dialing", "ringing"] and states.count("dialing") == 1 and states.count("ringing") == 1


# -- HEAD --------------------------------------------------------------------------------------------------------


async def test_head_is_answered_where_get_is(api: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    call_id = finished["id"]
    for path in [
        "/healthz",
        "/",
        "/calls",
        f"/calls/{call_id}",
        f"/calls/{call_id}/parts/timeline",
        "/parts/setup",
        f"/api/calls/{call_id}/audio",
        "/runs",
        "/docs",
    ]:
        got = await api.get(path)
        head = await api.head(path)
        assert got.status_code == 200, path
        assert head.status_code == 200, (path, head.text)
        assert head.headers["content-type"] == got.headers["content-type"], path
    audio = await api.head(f"/api/calls/{call_id}/audio")
    assert int(audio.headers["content-length"]) == len((await api.get(f"/api/calls/{call_id}/audio")).content)
    assert audio.headers["accept-ranges"] == "bytes"
    # HEAD stays out of the API's description: it is GET's twin, not an operation of its own.
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert set(paths["/healthz"]) == {"get"}
    assert set(paths["/api/calls/{call_id}/audio"]) == {"get"}


async def test_head_of_a_missing_recording_is_404(api: httpx.AsyncClient) -> None:
    call_id = await place(api, "+15550100004")  # busy: never a recording
    await wait_for_call(api, call_id)
    assert (await api.head(f"/api/calls/{call_id}/audio")).status_code == 404
    assert (await api.head("/api/calls/nope/audio")).status_code == 404


# -- Range -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=5-2", "bytes=", "items=0-1", "nonsense"])
async def test_a_malformed_range_is_a_json_400(api: httpx.AsyncClient, finished: dict[str, Any], header: str) -> None:
    response = await api.get(finished["recording_url"], headers={"Range": header})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and body["error"].startswith("Invalid Range header")


async def test_a_range_past_the_end_is_a_json_416(api: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    size = len((await api.get(finished["recording_url"])).content)
    for header in [f"bytes={size}-", f"bytes={size + 10}-{size + 20}"]:
        response = await api.get(finished["recording_url"], headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-range"] == f"bytes */{size}"
        assert response.json() == {"error": f"Range not satisfiable: the recording has {size} bytes."}


async def test_a_valid_range_still_gets_its_bytes(api: httpx.AsyncClient, finished: dict[str, Any]) -> None:
    whole = (await api.get(finished["recording_url"])).content
    response = await api.get(finished["recording_url"], headers={"Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.content == whole[:10]
    assert response.headers["content-range"] == f"bytes 0-9/{len(whole)}"
    tail = await api.get(finished["recording_url"], headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole[-5:]

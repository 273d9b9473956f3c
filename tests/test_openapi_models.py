"""/openapi.json describes what each JSON route reads and answers (issue 11, typed edges), and the models change
nothing the routes answered before they had them: the same fields, no nulls added, the same error words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
from pydantic import BaseModel, SecretStr

from callcheck.api.schemas import SSE_EVENT
from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.doctor import DoctorReport
from callcheck.presenters.calls import CallDetail, CallPage, CallSummary
from callcheck.presenters.monitors import Comparison, MonitorDetail, MonitorList, MonitorView, Trends
from callcheck.presenters.runs import RunPage, RunView
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.test_runs_api import wait_run

JSON = "application/json"
WRITES = {"post", "put", "patch"}
# Operations that take no body at all (a POST that acts on the resource its path names).
NO_BODY = {("post", "/api/monitors/{name}/run"), ("post", "/api/monitors/{name}/test-alert")}
# Every route is described now; a route added undescribed must be described, not listed here.
NOT_YET: set[tuple[str, str]] = set()

SUITE: dict[str, Any] = {
    "name": "pizza-line",
    "business": "We are Pizza Palace, a pizza restaurant that takes orders.",
    "number": "+15550100001",
    "scenarios": [{"name": "order", "goal": "order a large pepperoni pizza", "expect": [{"outcome": "success"}]}],
}


def _described(spec: dict[str, Any], schema: dict[str, Any] | None) -> bool:
    """The schema names fields (resolving a $ref): not absent, not `{}`, not any object."""
    if not schema:
        return False
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _described(spec, spec["components"]["schemas"].get(ref.removeprefix("#/components/schemas/")))
    return bool(schema.get("properties"))


def undescribed(spec: dict[str, Any]) -> list[str]:
    """Each JSON answer, and each body a write reads, that the description leaves as "any object" (or leaves out)."""
    problems = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ok = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
            if method == "get" and not ok:
                problems.append(f"{method} {path}: no success answer described")
            for code, answer in ok.items():
                content = answer.get("content", {})
                if JSON in content and not _described(spec, content[JSON].get("schema")):
                    problems.append(f"{method} {path}: {code} answers an undescribed object")
                if method == "get" and not content:
                    problems.append(f"{method} {path}: {code} has no content described")
            if method in WRITES and (method, path) not in NO_BODY:
                body = operation.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
                if not _described(spec, body):
                    problems.append(f"{method} {path}: its request body is undescribed")
    return problems


def the_description() -> dict[str, Any]:
    # Building the app touches no disk and no network (the lifespan does); its description is the served one.
    app = create_app(Settings(_env_file=None, secret_key=SecretStr("openapi-secret-key-0123456789-abcdefgh")))  # type: ignore[call-arg]
    spec: dict[str, Any] = app.openapi()
    return spec


def test_every_json_route_describes_what_it_answers_and_what_it_reads() -> None:
    spec = the_description()
    problems = undescribed(spec)
    left = {(p.split(" ")[0], p.split(" ")[1].rstrip(":")) for p in problems}
    assert left <= NOT_YET, problems
    # The GET views answer their models, by reference.
    views = {
        "/api/calls": CallPage,
        "/api/calls/{call_id}": CallDetail,
        "/api/runs": RunPage,
        "/api/runs/{run_id}": RunView,
        "/api/monitors": MonitorList,
        "/api/monitors/{name}": MonitorDetail,
        "/api/monitors/{name}/trends": Trends,
        "/api/compare": Comparison,
        "/api/doctor": DoctorReport,
    }
    for path, model in views.items():
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"][JSON]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model.__name__}"}, path
    # The bodies stand alone (no $ref into a $defs they do not carry); a monitor's suite is a suite, or its text.
    assert "$defs" not in str(spec["paths"])
    suite = spec["paths"]["/api/runs"]["post"]["requestBody"]["content"][JSON]["schema"]
    assert suite["required"] == ["business", "scenarios"] and "persona" in str(suite)
    monitor = spec["paths"]["/api/monitors"]["post"]["requestBody"]["content"][JSON]["schema"]
    given_as = monitor["properties"]["suite"]["anyOf"]
    assert given_as[0]["required"] == suite["required"] and given_as[1] == {"type": "string"}


def test_the_check_fails_on_an_undescribed_route() -> None:
    """The check above can fail: an any-object answer, a body left out, a GET without content are each named."""
    empty = {"$ref": "#/components/schemas/Empty"}
    spec = {
        "components": {"schemas": {"Empty": {"type": "object"}}},
        "paths": {
            "/a": {"get": {"responses": {"200": {"content": {JSON: {"schema": {"type": "object"}}}}}}},
            "/b": {"post": {"responses": {"200": {"content": {JSON: {"schema": empty}}}}}},
            "/c": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }
    assert undescribed(spec) == [
        "get /a: 200 answers an undescribed object",
        "post /b: 200 answers an undescribed object",
        "post /b: its request body is undescribed",
        "get /c: 200 has no content described",
    ]


def exactly(model: type[BaseModel], answer: dict[str, Any], fields: list[str]) -> None:
    """`answer` has exactly `fields`, in that order (what the route answered before it had a model), and reads as
    `model`."""
    assert list(answer) == fields, model.__name__
    model.model_validate(answer)


SUMMARY = [
    "id", "state", "simulated", "origin", "to_number", "scenario", "created_at", "ended_at", "duration_secs",
    "outcome", "conversation_id", "run_id", "token_name",
]  # fmt: skip
DETAIL = [
    *SUMMARY, "updated_at", "business_description", "prompt", "first_message", "call_sid", "error",
    "upstream_response", "transcript", "journey", "analysis", "metadata", "cost", "time_to_answer_s",
    "upstream_error", "warnings", "events", "recording_url",
]  # fmt: skip
RUN = [
    "id", "name", "state", "simulated", "created_at", "finished_at", "concurrency", "rate_per_min", "token_name",
    "counts", "items", "exit_code", "error", "report",
]  # fmt: skip
MONITOR = [
    "name", "suite", "schedule", "every_s", "cron", "timezone", "status", "paused", "badge", "consecutive_failures",
    "alert_after", "alerts", "calls_per_run", "calls_per_day", "concurrency", "next_run_at", "run_requested",
    "last_run_id", "skipped_slots", "status_changed_at", "created_at",
]  # fmt: skip
MONITOR_RUN = ["id", "state", "exit_code", "created_at", "finished_at", "slot", "error"]


async def test_the_answers_keep_their_fields_with_their_models(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    started = await api.post("/api/runs", json=SUITE)
    assert started.status_code == 202
    exactly(RunView, started.json(), RUN)
    run = await wait_run(api, started.json()["id"])
    assert run["state"] == "completed" and run["report"]["passed"] is True  # the report passes through whole
    exactly(RunView, run, RUN)
    # The report is described as the JSON report it is (not as any object), and the stored one fits.
    report = the_description()["components"]["schemas"]["RunView"]["properties"]["report"]
    assert "scenarios" in report["anyOf"][0]["properties"]
    assert jsonschema_rs.validator_for(report).is_valid(run["report"])
    assert not jsonschema_rs.validator_for(report).is_valid({**run["report"], "scenarios": "none"})
    assert list(run["items"][0]) == ["display_name", "scenario", "repeat", "status", "call_id", "call_state"]
    assert run["counts"] == {"pending": 0, "active": 0, "done": 1, "skipped": 0}
    listed = (await api.get("/api/runs")).json()
    assert list(listed) == ["runs", "next_cursor"]
    assert list(listed["runs"][0]) == ["id", "name", "state", "created_at", "exit_code", "simulated", "token_name"]

    calls = (await api.get("/api/calls")).json()
    exactly(CallPage, calls, ["calls", "next_cursor"])
    exactly(CallSummary, calls["calls"][0], SUMMARY)
    detail = (await api.get(f"/api/calls/{run['items'][0]['call_id']}")).json()
    exactly(CallDetail, detail, DETAIL)
    assert list(detail["events"][0]) == ["id", "at", "kind", "state", "detail"]
    assert list(detail["cost"]) == ["credits", "usd"] and detail["upstream_error"] is None
    # The stream of a finished call: each event as the description says (the data JSON, `end` the call's detail).
    stream = await api.get(f"/api/calls/{detail['id']}/events")
    events = [_event(block) for block in stream.text.replace("\r\n", "\n").split("\n\n") if block.strip()]
    each = jsonschema_rs.validator_for(SSE_EVENT)
    assert [e["event"] for e in events][-1] == "end" and all(each.is_valid(e) for e in events), events
    assert list(json.loads(events[-1]["data"])) == DETAIL and events[-1].get("id") is None
    states = [json.loads(e["data"]) for e in events if e["event"] == "state"]
    assert states and all(list(state) == ["id", "at", "kind", "state", "detail"] for state in states)
    # A figure stored as a whole number stays one (42, not 42.0).
    assert isinstance(detail["duration_secs"], int) == isinstance(detail["metadata"]["duration_secs"], int)

    created = await api.post("/api/monitors", json={"suite": SUITE, "every": "1h", "paused": True})
    assert created.status_code == 201
    exactly(MonitorView, created.json(), MONITOR)
    assert created.json()["next_run_at"] is None  # paused: a null the model keeps, as the route answered
    monitor = (await api.get("/api/monitors/pizza-line")).json()
    exactly(MonitorDetail, monitor, [*MONITOR, "runs", "deliveries"])
    exactly(MonitorList, (await api.get("/api/monitors")).json(), ["monitors"])
    ran = await api.get("/api/compare", params={"a": run["id"], "b": run["id"]})
    compared = ran.json()
    exactly(Comparison, compared, ["passed", "flipped", "added", "removed", "scenarios", "figures", "a", "b"])
    assert list(compared["a"]) == [*MONITOR_RUN, "name"] and compared["a"]["name"] == "pizza-line"
    trends = (await api.get("/api/monitors/pizza-line/trends")).json()
    exactly(Trends, trends, ["monitor", "overall", "scenarios"])
    assert (await api.delete("/api/monitors/pizza-line")).json() == {"deleted": "pizza-line"}


def _event(block: str) -> dict[str, Any]:
    """One Server-Sent Event's fields (comment lines left out)."""
    fields: dict[str, Any] = {}
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        if name:
            fields[name] = int(value.strip()) if name == "retry" else value.removeprefix(" ")
    return fields


async def test_a_monitor_body_of_the_wrong_types_keeps_its_words(client_for: Any, tmp_path: Path) -> None:
    """The body is read by its model now; each wrong type is still refused with the sentence it had, in the same
    order (unknown fields first, then name, the schedule, the time zone, paused)."""
    api: httpx.AsyncClient = await client_for(settings_for(None, tmp_path, workers=False))
    schedule = 'every is a duration such as "15m"; cron a five-field expression.'
    cases: list[tuple[dict[str, Any], str]] = [
        ({"suite": SUITE, "name": 5, "colour": "red", "shade": 1}, "Unknown field(s): colour, shade."),
        ({"suite": SUITE, "name": 5, "every": []}, "name must be a string."),
        ({"suite": SUITE, "every": [], "timezone": 1}, schedule),
        ({"suite": SUITE, "every": "1h", "cron": 5}, schedule),
        ({"suite": SUITE, "every": "1h", "timezone": 1, "paused": "x"}, "timezone must be an IANA name such as "
         "Europe/Paris."),
        ({"suite": SUITE, "every": "1h", "paused": "yes"}, "paused must be true or false."),
        ({"suite": SUITE, "every": "1h", "paused": None}, "paused must be true or false."),
        ({"suite": 5, "every": "1h"}, "suite is required: the suite as a JSON object, or its YAML or JSON text."),
    ]  # fmt: skip
    for body, message in cases:
        answer = await api.post("/api/monitors", json=body)
        assert (answer.status_code, answer.json()) == (400, {"error": message}), body
    assert (await api.post("/api/monitors", json=[SUITE])).json() == {"error": "Request body must be a JSON object."}

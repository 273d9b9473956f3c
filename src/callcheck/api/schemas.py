"""What the JSON routes read and answer: the models that validate them and describe them in /openapi.json.

Request bodies are read by `callcheck.edge.body` (size, media type, JSON object, storable text: each with the seed's
words and a 4xx `{"error": ...}`), then validated by their model here (`body_of`); answers are declared with
`response_model`, so FastAPI checks them against the model that documents them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from callcheck.domain.monitoring import MAX_ALERT_AFTER, MAX_CHANNELS
from callcheck.domain.phone import E164_PATTERN
from callcheck.domain.prompts import DEFAULT_SCENARIO
from callcheck.domain.suite import Persona, Timeouts
from callcheck.edge.body import BodyModel
from callcheck.presenters.schemas import standalone


class ErrorBody(BaseModel):
    """Every error: one sentence for a person."""

    error: str = Field(examples=["Phone number must be in E.164 format, for example +15551234567."])


def required_field(schema: dict[str, Any]) -> None:
    """A field the seed requires, though the model takes it absent: its absence has the seed's own error, checked by
    the route in the seed's order (a missing description first)."""
    schema.pop("default", None)


class CallBody(BodyModel):
    """POST /api/call."""

    # Only types are checked here; the number's format and the description's presence are the route's, in the
    # seed's order and words.
    model_config = ConfigDict(json_schema_extra={"required": ["to_number"]})

    to_number: Annotated[str | None, WithJsonSchema({"type": "string", "pattern": E164_PATTERN.pattern})] = Field(
        default=None,
        description="The phone number to call in E.164 format (e.g., +15551234567).",
        examples=["+15551234567"],
        json_schema_extra=required_field,
    )
    business_description: str | None = Field(
        default=None,
        description="The business description for this call. If not provided, uses the description from the "
        "current session (set via /api/context).",
    )
    scenario: str | None = Field(
        default=None,
        description="The goal or task the AI caller should accomplish. If not provided, uses the scenario from the "
        f"current session, or defaults to: “{DEFAULT_SCENARIO}”",
    )


class CallInitiated(BaseModel):
    """A placed call: the seed's body plus the call's id."""

    model_config = ConfigDict(extra="allow")

    ok: bool = True
    status: str = Field(description="The call status from ElevenLabs. Typically “initiated”.")
    message: str = Field(examples=["Call initiated."])
    to_number: str
    scenario: str = Field(description="The normalized scenario used for the call.")
    call_sid: str | None = Field(description="Twilio call SID if available from the ElevenLabs response.")
    conversation_id: str | None = Field(description="ElevenLabs conversation ID if available from the response.")
    raw: dict[str, Any] = Field(description="The complete raw response from the ElevenLabs API.")
    id: str = Field(description="callcheck's id of the call: GET /api/calls/{id} follows it.")


class ContextBody(BodyModel):
    """POST /api/context."""

    model_config = ConfigDict(json_schema_extra={"required": ["description"]})

    description: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None, description="What the business is and does.", json_schema_extra=required_field
    )
    scenario: str | None = Field(default=None, description="The task later calls try, unless they name their own.")


class ContextSaved(BaseModel):
    """The stored context."""

    ok: bool = True
    scenario: str = Field(description="The normalized scenario.")


class Health(BaseModel):
    """GET /healthz."""

    ok: bool = True
    version: str = Field(description="callcheck's version.")


class WebhookReceipt(BaseModel):
    """A signed webhook, accepted: applied to its call (`matched`), kept for a call not known yet (`matched`: false),
    or a delivery seen before (`duplicate`)."""

    ok: bool = True
    matched: bool | None = Field(default=None, description="Whether the event's conversation is a call of ours.")
    call_id: str | None = Field(default=None, description="The call it was applied to.")
    duplicate: bool | None = Field(default=None, description="True for a delivery already received.")


# -- a suite, as POST /api/runs and the monitors take it (docs/suites.md) ------------------------------------------
# These describe the body; the suite reader (domain/suite.py) checks it, and names each problem by its path and line.

Assertions = Annotated[
    list[dict[str, Any]],
    Field(description='Assertions, each a one-key object such as {"outcome": "success"} (docs/suites.md).'),
]


class SuiteDefaults(BaseModel):
    """Applied to every scenario."""

    model_config = ConfigDict(extra="forbid")

    expect: Assertions | None = None
    persona: Persona | None = None
    timeouts: Timeouts | None = None
    repeat: int | None = Field(default=None, ge=1, le=100)
    required_pass_rate: float | None = Field(default=None, gt=0, le=1)


class SuiteScenario(BaseModel):
    """One task the caller tries."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique in the suite, no `#` in it.")
    goal: str = Field(description="What the caller must get done.")
    number: str | None = Field(default=None, description="Call this E.164 number instead of the suite's.")
    persona: Persona | None = None
    repeat: int | None = Field(default=None, ge=1, le=100, description="Calls to place for this scenario.")
    required_pass_rate: float | None = Field(default=None, gt=0, le=1)
    expect: Assertions | None = None
    timeouts: Timeouts | None = None
    first_message: str | None = Field(default=None, description="The caller's opening line.")


class SuiteBody(BaseModel):
    """A suite: the YAML file's content, as JSON (docs/suites.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="The suite's name in reports; default from `business`.")
    business: str = Field(description="The business description the caller is given.")
    number: str | None = Field(default=None, description="The E.164 number to call, unless every scenario has one.")
    defaults: SuiteDefaults | None = None
    scenarios: list[SuiteScenario] = Field(min_length=1)


# -- monitors ------------------------------------------------------------------------------------------------------

EVERY_OR_CRON = 'every is a duration such as "15m"; cron a five-field expression.'
SUITE_ANY = WithJsonSchema(
    {
        "anyOf": [standalone(SuiteBody.model_json_schema()), {"type": "string"}],
        "description": "The suite as a JSON object, or its YAML or JSON text.",
    }
)
EVERY = WithJsonSchema(
    {
        "anyOf": [{"type": "string"}, {"type": "integer"}],
        "description": 'How often: a duration such as "15m" or "1h", or seconds.',
    }
)
ALERTS = WithJsonSchema(
    {
        "type": "array",
        "maxItems": MAX_CHANNELS,
        "items": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["webhook", "slack", "email"]},
                "target": {"type": "string", "description": "A URL, or an email address."},
            },
            "required": ["kind", "target"],
        },
        "description": "Where alerts go.",
    }
)
AFTER = WithJsonSchema(
    {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_ALERT_AFTER,
        "description": "Failing runs in a row before an alert (default 1).",
    }
)
CONCURRENCY = WithJsonSchema(
    {"type": "integer", "minimum": 1, "maximum": 50, "description": "Most calls of a run active at once (default 1)."}
)


class MonitorBody(BodyModel):
    """POST /api/monitors: a suite and a schedule (`every` or `cron`)."""

    model_config = ConfigDict(json_schema_extra={"required": ["suite"]})
    # Each field's own words when it has the wrong type (the route checks them in this order).
    problem_words: ClassVar[dict[str, str]] = {
        "name": "name must be a string.",
        "cron": EVERY_OR_CRON,
        "timezone": "timezone must be an IANA name such as Europe/Paris.",
        "paused": "paused must be true or false.",
    }

    # Checked by the route and jobs/monitors.py with words of their own: typed Any here, described as they are.
    suite: Annotated[Any, SUITE_ANY] = None
    every: Annotated[Any, EVERY] = None
    cron: str | None = Field(default=None, description="A five-field cron expression, e.g. */30 8-20 * * 1-5.")
    timezone: str | None = Field(default=None, description="The IANA time zone of the cron schedule.")
    name: str | None = Field(default=None, description="The monitor's name; default from the suite's.")
    alerts: Annotated[Any, ALERTS] = None
    after: Annotated[Any, AFTER] = 1
    concurrency: Annotated[Any, CONCURRENCY] = 1
    paused: bool = Field(default=False, description="Created paused: it runs once resumed.")


class MonitorChange(BaseModel):
    """PATCH /api/monitors/{name}: any of the fields, each replacing the monitor's (jobs/monitors.py checks them)."""

    suite: Annotated[Any, SUITE_ANY] = None
    every: Annotated[Any, EVERY] = None
    cron: str | None = None
    timezone: str | None = None
    name: str | None = Field(default=None, description="A new name.")
    alerts: Annotated[Any, ALERTS] = None
    after: Annotated[Any, AFTER] = None
    concurrency: Annotated[Any, CONCURRENCY] = None
    paused: bool | None = Field(default=None, description="Pause or resume.")


def json_body(
    model: type[BaseModel] | dict[str, Any] | None, *, required: bool = True, description: str = ""
) -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body (a model's schema, a JSON schema, or any object)."""
    if isinstance(model, dict):
        schema = model
    else:
        schema = standalone(model.model_json_schema()) if model else {"type": "object", "additionalProperties": True}
    body: dict[str, Any] = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is wrong in a way its sender can fix."},
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


# Answered by routes that dial (the dialing rules and call budgets, docs/limits.md).
DIALING_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "The dialing rules refuse this number (`rule` names which)."},
    429: {
        "model": ErrorBody,
        "description": "A call budget is spent (`limit` names it, `resets_at` says when it frees up).",
        "headers": {
            "Retry-After": {"description": "Seconds until the budget frees up.", "schema": {"type": "integer"}}
        },
    },
}


# One event of a call's stream (the schema of a text/event-stream answer describes each event, OpenAPI 3.2): its
# data is JSON, the event as GET /api/calls/{id} lists it (state), new turns (transcript), the recording's link, or
# the whole call (end, which has no id: nothing follows it).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["state", "transcript", "recording", "end"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer"},
    },
}


def _describe_what_every_route_may_answer(
    path: str, method: str, operation: dict[str, Any], responses: dict[str, Any]
) -> None:
    """The answers the middleware and the error handlers give that no route declares itself."""
    if "{" in path:
        responses.setdefault("404", _error("Nothing has this id."))
    if "requestBody" in operation:
        responses.setdefault("413", _error("The request body is too large."))
        responses.setdefault("415", _error("The body is not declared as JSON."))
        responses.setdefault("403", _error("A cross-site request, refused."))
    if path.endswith("/events") and method == "get":
        ok = responses.get("200", {})
        ok["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
        ok["description"] = "Server-Sent Events: `state`, `transcript`, `recording`, then `end`."
    if path.endswith("/audio") and method == "get":
        ok = responses.get("200", {})
        ok["content"] = {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}}
        responses.setdefault(
            "206",
            {
                "description": "Part of the recording (a Range request).",
                "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}},
            },
        )
        responses.setdefault("416", _error("The Range asked for is outside the recording."))


# What a created call or run leads to (OpenAPI links: what a client, or a stateful fuzzer, does next with its id).
LINKS = {
    ("/api/call", "post", "200"): ("call_id", ["/api/calls/{call_id}", "/api/calls/{call_id}/audio"], ["get"]),
    ("/api/runs", "post", "202"): ("run_id", ["/api/runs/{run_id}"], ["get", "delete"]),
}


def _link_created_to_their_routes(paths: dict[str, Any]) -> None:
    for (path, method, status), (parameter, targets, methods) in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        links = response.setdefault("links", {})
        for target in targets:
            for target_method in methods:
                if target_method not in paths.get(target, {}):
                    continue
                pointer = target.replace("~", "~0").replace("/", "~1")
                name = f"{target_method.upper()} {target}".replace("/", "_").replace("{", "").replace("}", "")
                links[name] = {
                    "operationRef": f"#/paths/{pointer}/{target_method}",
                    "parameters": {parameter: "$response.body#/id"},
                }


def install_openapi(app: FastAPI) -> None:
    """Describe the API as it behaves: request validation answers 400 `{"error": ...}`, never FastAPI's 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=app.openapi_tags
            )
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    # FastAPI's own 422 (its validation error shape) is never answered; a 422 a route declares is.
                    if responses.get("422", {}).get("description") == "Validation Error":
                        responses.pop("422")
                        responses.setdefault("400", _error("A parameter is invalid."))
                    _describe_what_every_route_may_answer(path, method, operation, responses)
            _link_created_to_their_routes(schema.get("paths", {}))
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components.setdefault("ErrorBody", ErrorBody.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""What the JSON routes read and answer, for the OpenAPI description only.

The routes read their bodies by hand (`callcheck.api.body`) so that every bad body gets the seed's words and a 4xx
`{"error": ...}`; these models tell `/openapi.json` and `/docs` the same shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from callcheck.domain.prompts import DEFAULT_SCENARIO


class ErrorBody(BaseModel):
    """Every error: one sentence for a person."""

    error: str = Field(examples=["Phone number must be in E.164 format, for example +15551234567."])


class CallBody(BaseModel):
    """POST /api/call."""

    to_number: str = Field(
        pattern=r"^\+[1-9]\d{7,14}$",
        description="The phone number to call in E.164 format (e.g., +15551234567).",
        examples=["+15551234567"],
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


class ContextBody(BaseModel):
    """POST /api/context."""

    description: str = Field(description="What the business is and does.")
    scenario: str | None = Field(default=None, description="The task later calls try, unless they name their own.")


class ContextSaved(BaseModel):
    """The stored context."""

    ok: bool = True
    scenario: str = Field(description="The normalized scenario.")


def json_body(model: type[BaseModel] | None, *, required: bool = True, description: str = "") -> dict[str, Any]:
    """`openapi_extra` describing a JSON request body (a model's schema, or any object)."""
    schema = model.model_json_schema() if model else {"type": "object", "additionalProperties": True}
    body: dict[str, Any] = {"required": required, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request is wrong in a way its sender can fix."},
}


def install_openapi(app: FastAPI) -> None:
    """Describe the API as it behaves: request validation answers 400 `{"error": ...}`, never FastAPI's 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes, tags=app.openapi_tags
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None and "400" not in responses:
                        responses["400"] = {
                            "description": "A parameter is invalid.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                        }
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components.setdefault("ErrorBody", ErrorBody.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

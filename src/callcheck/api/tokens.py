"""API tokens over the API, for holders of an admin token: list, create (shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, WithJsonSchema

from callcheck.api.schemas import ERRORS, ErrorBody, json_body, required_field
from callcheck.domain.access import TokenScope, parse_scope, valid_name
from callcheck.edge.body import BodyModel, json_object, validated
from callcheck.edge.deps import ServicesDep
from callcheck.edge.errors import error_response
from callcheck.edge.guard import identity_of
from callcheck.errors import InvalidInput
from callcheck.presenters.tokens import TokenCreated, TokenList, TokenView, token_view

router = APIRouter(prefix="/api/tokens", tags=["tokens"])

NO_ADMIN = (
    "Token management over the API needs an admin token; create the first one with "
    "`callcheck token create --name NAME --scope admin`."
)
# An admin token is checked by AccessControl; these routes add that one must be presented, even on a local server
# without tokens (where everything else is open): its first token is made on the command line.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid API token was presented."},
    403: {"model": ErrorBody, "description": "The token is not an admin token, or none was presented."},
}


def _not_admin(request: Request) -> JSONResponse | None:
    """A 403 unless the request carries an admin token (AccessControl has checked its scope)."""
    return error_response(NO_ADMIN, 403) if identity_of(request.scope) is None else None


class TokenBody(BodyModel):
    """POST /api/tokens."""

    # Types only: the name's rules and the scope's words are checked by the route, with their own errors.
    model_config = ConfigDict(json_schema_extra={"required": ["name"]})

    name: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        default=None,
        description="A name for the token, never reused: it is shown in the history of what it did.",
        json_schema_extra=required_field,
    )
    scope: Annotated[str | None, WithJsonSchema({"type": "string", "enum": [s.value for s in TokenScope]})] = Field(
        default=TokenScope.CALL.value, description="read, call or admin."
    )


@router.get("", summary="List API tokens", response_model=TokenList, responses=ADMIN_ERRORS)
async def list_tokens(request: Request, services: ServicesDep) -> TokenList | JSONResponse:
    """Every token, revoked ones included, oldest first."""
    return _not_admin(request) or TokenList(tokens=[token_view(row) for row in await services.store.tokens.list()])


@router.post(
    "",
    status_code=201,
    summary="Create an API token",
    openapi_extra=json_body(TokenBody),
    response_model=TokenCreated,
    responses={**ERRORS, **ADMIN_ERRORS, 409: {"model": ErrorBody, "description": "A token has this name already."}},
)
async def create_token(request: Request, services: ServicesDep) -> TokenCreated | JSONResponse:
    """Make a token; the answer's `token` is the only time it is shown."""
    refused = _not_admin(request)
    if refused is not None:
        return refused
    # Read after the admin check (not as a dependency, which would run first): a 403 says more than a bad body.
    body = validated(TokenBody, await json_object(request))
    name = valid_name(body.check("name").name or "")
    scope_text = body.check("scope").scope
    scope = parse_scope(scope_text) if scope_text is not None else TokenScope.CALL
    row, token = await services.store.tokens.create(name, scope)
    return TokenCreated(**token_view(row).model_dump(), token=token)


@router.delete(
    "/{name}",
    summary="Revoke an API token",
    response_model=TokenView,
    responses={**ERRORS, **ADMIN_ERRORS, 404: {"model": ErrorBody}},
)
async def revoke_token(request: Request, name: str, services: ServicesDep) -> TokenView | JSONResponse:
    """Revoke at once, for its logged-in pages too; the name stays in the history and is not reused."""
    refused = _not_admin(request)
    if refused is not None:
        return refused
    if len(name) > 64:
        raise InvalidInput("No token has a name that long.")
    return token_view(await services.store.tokens.revoke(name))

"""FastAPI dependencies: the running services and the session's context, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from callcheck.edge.guard import identity_of
from callcheck.services import Services
from callcheck.store.repo import Context

# A request without a session cookie (the seed's curl examples) uses this one context of the local server.
LOCAL_CONTEXT_ID = "local"
SESSION_KEY = "context_id"


async def get_services(request: Request) -> Services:
    """The services built by the app's lifespan. A coroutine although it awaits nothing: FastAPI runs a plain `def`
    dependency in a worker thread, a thread hop on every request that names the services (bench/README.md)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def context_id_of(request: Request) -> str:
    """The id of the session's context: the signed cookie's, else the bearer token's own, else the local one."""
    value = request.session.get(SESSION_KEY)
    if isinstance(value, str) and value:
        return value
    identity = identity_of(request.scope)
    # With tokens in use, a cookie-less client (curl with a bearer token) keeps a context of its token's own.
    return f"token-{identity.token_id}" if identity is not None else LOCAL_CONTEXT_ID


def token_name_of(request: Request) -> str | None:
    """The name of the API token the request was made with; None when no token is in use."""
    identity = identity_of(request.scope)
    return identity.name if identity is not None else None


async def get_context(request: Request, services: ServicesDep) -> Context | None:
    """The session's stored context, if one was set."""
    return await services.store.get_context(context_id_of(request))


ContextDep = Annotated[Context | None, Depends(get_context)]

"""FastAPI dependencies: the running services and the session's context, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from callcheck.services import Services
from callcheck.store.repo import Context

# A request without a session cookie (the seed's curl examples) uses this one context of the local server.
LOCAL_CONTEXT_ID = "local"
SESSION_KEY = "context_id"


def get_services(request: Request) -> Services:
    """The services built by the app's lifespan."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def context_id_of(request: Request) -> str:
    """The id of the session's context: the signed cookie's, else the local one."""
    value = request.session.get(SESSION_KEY)
    return value if isinstance(value, str) and value else LOCAL_CONTEXT_ID


async def get_context(request: Request, services: ServicesDep) -> Context | None:
    """The session's stored context, if one was set."""
    return await services.store.get_context(context_id_of(request))


ContextDep = Annotated[Context | None, Depends(get_context)]

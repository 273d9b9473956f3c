"""`create_app(settings)`: the FastAPI application. Everything it needs is built in the lifespan, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.middleware.sessions import SessionMiddleware

from callcheck import __version__
from callcheck.api.schemas import Health, install_openapi
from callcheck.config import Settings
from callcheck.domain.access import ELEVENLABS_WEBHOOK_PATH
from callcheck.edge.body import BodyLimit, SameOriginOnly
from callcheck.edge.errors import install_error_handlers
from callcheck.edge.guard import AccessControl, HostAllowlist, SecureCookies, TrustedProxies
from callcheck.runtime import running_services, session_secret

log = logging.getLogger("callcheck")

# post_call_audio webhooks carry a base64 MP3 of the whole call (contract §5.4).
WEBHOOK_MAX_BYTES = 64_000_000


def create_app(settings: Settings | None = None, *, sandbox_clock: Callable[[], float] | None = None) -> FastAPI:
    """Build a callcheck application for these settings; `sandbox_clock` (tests only) ages the calls of the
    sandbox started by `sandbox` (see providers/elevenlabs/sandbox HeldClock)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, sandbox_clock=sandbox_clock) as services:
            app.state.services = services
            app.state.ready = True
            yield
            app.state.ready = False

    app = FastAPI(
        title="callcheck",
        version=__version__,
        summary="Test a business's phone line the way a customer would.",
        lifespan=lifespan,
        # /docs is served below from vendored Swagger UI files: FastAPI's own page loads them from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_openapi(app)
    app.state.ready = False
    from callcheck.web.pages import not_found

    install_error_handlers(app, not_found_page=not_found)
    app.state.exposed = False  # `serve` on an address beyond loopback sets it: then no token means no access
    app.add_middleware(AccessControl)  # inside the session: it reads the page's login from it
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(settings),
        session_cookie="callcheck_session",
        same_site="lax",
        https_only=bool(settings.public_url and settings.public_url.startswith("https://")),
    )
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, overrides={ELEVENLABS_WEBHOOK_PATH: WEBHOOK_MAX_BYTES}
    )
    app.add_middleware(SameOriginOnly)
    app.add_middleware(SecureCookies)
    app.add_middleware(HostAllowlist, allowed=settings.allowed_host_names())
    if settings.trusted_proxy_list():  # outermost: the scheme, client and Host the others see are the real ones
        app.add_middleware(TrustedProxies, trusted=settings.trusted_proxy_list())

    @app.get("/healthz", tags=["meta"], summary="Readiness")
    @app.head("/healthz", include_in_schema=False)  # load balancers and uptime checkers probe with HEAD
    async def healthz() -> Health:
        """200 once the app has started (database migrated, workers running)."""
        return Health(ok=True, version=__version__)

    from callcheck.api import calls, doctor, history, runs, tokens, webhooks
    from callcheck.api import metrics as metrics_api
    from callcheck.api import monitors as monitors_api
    from callcheck.web import login, pages
    from callcheck.web import monitors as monitor_pages
    from callcheck.web import runs as run_pages

    app.include_router(calls.router)
    app.include_router(doctor.router)
    app.include_router(history.router)
    app.include_router(webhooks.router)
    app.include_router(runs.router)
    app.include_router(pages.router)
    app.include_router(run_pages.router)
    app.include_router(monitors_api.router)
    app.include_router(metrics_api.router)
    app.include_router(monitor_pages.router)
    app.include_router(login.router)
    app.include_router(tokens.router)
    app.mount("/static", pages.static_files(), name="static")

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="callcheck API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    return app

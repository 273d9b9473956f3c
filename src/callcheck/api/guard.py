"""The doors of a server that may be reached by others: trusted proxies, the Host allowlist, tokens and CSRF.

Outermost first, as `create_app` stacks them:

    TrustedProxies   X-Forwarded-Host/-Proto/-For believed only from CALLCHECK_TRUSTED_PROXIES
    HostAllowlist    a Host this server does not answer to gets 421 (DNS rebinding)
    SecureCookies    the session cookie is marked Secure when the request came over HTTPS
    (SameOriginOnly, BodyLimit, SessionMiddleware)
    AccessControl    once a token exists, every route but the open ones needs one, with enough scope;
                     state-changing requests from a logged-in page also need its CSRF token
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from callcheck.api.errors import error_response
from callcheck.domain.access import SAFE_METHODS, Identity, is_open, needed_scope

SESSION_TOKEN_KEY = "token_id"
SESSION_CSRF_KEY = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_PATH = "/login"

NEEDS_TOKEN = (
    "This server needs an API token: send it as `Authorization: Bearer <token>` (`callcheck token create` makes one)."
)
BAD_TOKEN = "This API token is not valid (unknown, mistyped or revoked)."
BAD_CSRF = "The page's form token is missing or out of date: reload the page and try again."
# Served on an address others can reach while no token exists (every token revoked after start): shut, not open.
EXPOSED_WITHOUT_TOKEN = (
    "This server listens beyond this machine and no API token exists: it refuses requests until one is created "
    "with `callcheck token create`."
)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    value = session.get(SESSION_CSRF_KEY)
    if not isinstance(value, str) or len(value) < 20:
        value = secrets.token_urlsafe(32)
        session[SESSION_CSRF_KEY] = value
    return value


def csrf_matches(session: dict[str, Any], given: str | None) -> bool:
    """True when `given` is the session's CSRF token (compared in constant time)."""
    expected = session.get(SESSION_CSRF_KEY)
    if not isinstance(expected, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def identity_of(scope: Scope) -> Identity | None:
    """The token a request was made with (None: none, or no tokens in use)."""
    state = scope.get("state") or {}
    identity = state.get("identity")
    return identity if isinstance(identity, Identity) else None


# -- proxies ------------------------------------------------------------------------------------------------------


class TrustedProxies:
    """Believe X-Forwarded-* from these proxies only: uvicorn's ProxyHeadersMiddleware for -Proto and -For (scheme
    and client), and X-Forwarded-Host (which it leaves alone) for the Host the page was asked for."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self.inner = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
        self.networks = [ipaddress.ip_network(item) for item in trusted]

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._trusted(scope):
            forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-host"]
            if forwarded:
                # The nearest proxy's value (the last one): anything before it came from the client.
                host = forwarded[-1].split(b",")[-1].strip()
                if host:
                    headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
                    scope = {**scope, "headers": [*headers, (b"host", host)]}
        await self.inner(scope, receive, send)  # type: ignore[arg-type]


# -- Host allowlist -----------------------------------------------------------------------------------------------


def host_name(host_header: str) -> str:
    """The name of a Host header, without its port or IPv6 brackets, lower case."""
    value = host_header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def host_allowed(name: str, allowed: list[str]) -> bool:
    """True for a host this server answers to.

    A DNS-rebinding page needs a name in a DNS zone its author controls: a name with a dot. Loopback names, IP
    addresses and single-label names (resolved from the hosts file or the local network, e.g. `localhost`,
    `testserver`) cannot be one, so they pass; every other name must be listed.
    """
    if "*" in allowed or name in allowed or not name:
        return True
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return "." not in name
    return True


class HostAllowlist:
    """Answer 421 to a Host header this server was not told it is reached by."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            host = Headers(scope=scope).get("host", "")
            name = host_name(host)
            if not host_allowed(name, self.allowed):
                shown = name if len(name) <= 100 else name[:99] + "…"
                message = (
                    f"This server does not answer to the host name {shown!r}. If it is reached by that name, add it "
                    "to CALLCHECK_ALLOWED_HOSTS."
                )
                await error_response(message, 421)(scope, receive, send)
                return
        await self.app(scope, receive, send)


# -- cookies ------------------------------------------------------------------------------------------------------


class SecureCookies:
    """Mark every cookie Secure on a request that came over HTTPS (directly, or through a trusted proxy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def secure_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"set-cookie" and b"secure" not in value.lower():
                        value = value + b"; Secure"
                    headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secure_send)


# -- tokens -------------------------------------------------------------------------------------------------------


def _wants_a_page(scope: Scope, headers: Headers) -> bool:
    path: str = scope["path"]
    return (
        scope["method"] in ("GET", "HEAD")
        and not path.startswith("/api/")
        and path not in ("/openapi.json", "/api")
        and "text/html" in headers.get("accept", "")
    )


def _login_redirect(scope: Scope) -> Response:
    target = scope["path"] + (("?" + scope["query_string"].decode("latin-1")) if scope.get("query_string") else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='/')}", status_code=303)


def _unauthorized(message: str) -> JSONResponse:
    response = error_response(message, 401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="callcheck"'
    return response


class AccessControl:
    """Tokens, scopes and CSRF. With no token in use (and a loopback server) everything passes, as before tokens.

    Runs inside SessionMiddleware (it reads the login from the session) and records the request's identity in
    `request.state.identity` for the routes (who placed a call) and the pages (who is logged in).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = getattr(scope["app"].state, "services", None)
        if services is None:  # not started (never in practice: servers wait for the lifespan)
            await self.app(scope, receive, send)
            return
        tokens = services.store.tokens
        headers = Headers(scope=scope)
        session: dict[str, Any] = scope.get("session", {})
        method: str = scope["method"]
        path: str = scope["path"]
        identity: Identity | None = None
        exposed = bool(getattr(scope["app"].state, "exposed", False))
        public_badges = services.settings.public_badges
        authorization = headers.get("authorization")
        if authorization is not None:
            kind, _, value = authorization.partition(" ")
            if kind.lower() == "bearer" and value.strip():
                identity = await tokens.identify(value.strip())
            # A credential that does not check out is refused, not ignored: its sender meant to be someone. (A local
            # server without tokens ignores it, as it always did.)
            if (
                identity is None
                and not is_open(method, path, public_badges=public_badges)
                and (exposed or await tokens.any_active())
            ):
                await _unauthorized(BAD_TOKEN)(scope, receive, send)
                return
        elif isinstance(session.get(SESSION_TOKEN_KEY), str):
            identity = await tokens.session_identity(session[SESSION_TOKEN_KEY])
            if identity is None:
                session.pop(SESSION_TOKEN_KEY, None)  # revoked: the login ends with it
        scope.setdefault("state", {})["identity"] = identity

        if is_open(method, path, public_badges=public_badges):
            await self.app(scope, receive, send)
            return
        if identity is None:
            if not exposed and not await tokens.any_active():
                await self.app(scope, receive, send)  # a local server with no tokens: open, as it always was
                return
            if _wants_a_page(scope, headers):
                await _login_redirect(scope)(scope, receive, send)
            elif exposed and not await tokens.any_active():
                await _unauthorized(EXPOSED_WITHOUT_TOKEN)(scope, receive, send)
            else:
                await _unauthorized(NEEDS_TOKEN)(scope, receive, send)
            return
        needed = needed_scope(method, path)
        if not identity.scope.allows(needed):
            message = (
                f"The token {identity.name!r} has the {identity.scope.value!r} scope; this needs {needed.value!r} "
                "(`callcheck token create --scope ...`)."
            )
            await error_response(message, 403)(scope, receive, send)
            return
        if identity.by_session and method not in SAFE_METHODS and not csrf_matches(session, headers.get(CSRF_HEADER)):
            await error_response(BAD_CSRF, 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

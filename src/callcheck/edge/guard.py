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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from callcheck.domain.access import SAFE_METHODS, Identity, is_open, needed_scope
from callcheck.edge.errors import error_response

if TYPE_CHECKING:
    from callcheck.store.tokens import TokenStore

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
        services = getattr(scope["app"].state, "services", None) if scope["type"] == "http" else None
        if services is None:  # not HTTP, or not started (never in practice: servers wait for the lifespan)
            await self.app(scope, receive, send)
            return
        door = _Door(scope, services.store.tokens, services.settings.public_badges)
        identity, refusal = await door.identify()
        if refusal is None:
            scope.setdefault("state", {})["identity"] = identity
            refusal = await door.refusal(identity)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Door:
    """One request at AccessControl: who sends it, and whether it may pass."""

    def __init__(self, scope: Scope, tokens: TokenStore, public_badges: bool) -> None:
        self.scope = scope
        self.tokens = tokens
        self.headers = Headers(scope=scope)
        self.session: dict[str, Any] = scope.get("session", {})
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.exposed = bool(getattr(scope["app"].state, "exposed", False))
        self.open = is_open(self.method, self.path, public_badges=public_badges)

    async def identify(self) -> tuple[Identity | None, Response | None]:
        """The identity of a bearer token or a logged-in session; a 401 instead for a token that does not check out."""
        authorization = self.headers.get("authorization")
        if authorization is None:
            return await self._session_identity(), None
        kind, _, value = authorization.partition(" ")
        identity = await self.tokens.identify(value.strip()) if kind.lower() == "bearer" and value.strip() else None
        # A credential that does not check out is refused, not ignored: its sender meant to be someone. (A local
        # server without tokens ignores it, as it always did.)
        if identity is None and not self.open and (self.exposed or await self._tokens_exist()):
            return None, _unauthorized(BAD_TOKEN)
        return identity, None

    async def _session_identity(self) -> Identity | None:
        token_id = self.session.get(SESSION_TOKEN_KEY)
        if not isinstance(token_id, str):
            return None
        identity = await self.tokens.session_identity(token_id)
        if identity is None:
            self.session.pop(SESSION_TOKEN_KEY, None)  # revoked: the login ends with it
        return identity

    async def refusal(self, identity: Identity | None) -> Response | None:
        """Why this request may not pass (the response saying so), or None when it may."""
        if self.open:
            return None
        if identity is None:
            return await self._anonymous_refusal()
        needed = needed_scope(self.method, self.path)
        if not identity.scope.allows(needed):
            message = (
                f"The token {identity.name!r} has the {identity.scope.value!r} scope; this needs {needed.value!r} "
                "(`callcheck token create --scope ...`)."
            )
            return error_response(message, 403)
        csrf = self.headers.get(CSRF_HEADER)
        if identity.by_session and self.method not in SAFE_METHODS and not csrf_matches(self.session, csrf):
            return error_response(BAD_CSRF, 403)
        return None

    async def _tokens_exist(self) -> bool:
        """Whether any token is active. The cached answer lets a request through a server without tokens (a token
        made by `callcheck token create` in another process counts within ACTIVE_FRESH_S); a refusal is confirmed by
        a fresh read, so revoking the last token opens a local server, and names the reason, at once."""
        return await self.tokens.any_active() and await self.tokens.any_active(fresh=True)

    async def _anonymous_refusal(self) -> Response | None:
        tokens_exist = await self._tokens_exist()
        if not self.exposed and not tokens_exist:
            return None  # a local server with no tokens: open, as it always was
        if _wants_a_page(self.scope, self.headers):
            return _login_redirect(self.scope)
        if self.exposed and not tokens_exist:
            return _unauthorized(EXPOSED_WITHOUT_TOKEN)
        return _unauthorized(NEEDS_TOKEN)

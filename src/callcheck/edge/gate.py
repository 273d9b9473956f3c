"""`Gate`: the checks every HTTP request passes before the session and the routes, in one ASGI layer.

In the order they apply (each refusal is the first that matches):

    Host allowlist   a Host this server does not answer to gets 421 (DNS rebinding); /healthz is exempt
    same origin      a state-changing request a browser sends for another site gets 403
    body limit       a body over the size cap gets 413, by Content-Length or by counting what arrives
    secure cookies   every cookie is marked Secure on a request that came over HTTPS

They were four middleware classes stacked one inside the other; one layer reads the headers once and wraps
`receive` and `send` once, which is a measurable share of a request's CPU on the placing path (bench/README.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcheck.edge.errors import error_response
from callcheck.edge.guard import host_allowed, host_name

TOO_LARGE = "Request body is too large."
CROSS_SITE = "Cross-site requests are refused."
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _TooLarge(Exception):
    pass


class Gate:
    """Host allowlist, same-origin, body limit and Secure cookies (see the module's docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], max_bytes: int, overrides: dict[str, int]) -> None:
        self.app = app
        self.allowed = allowed_hosts
        self.max_bytes = max_bytes
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await error_response(*refusal)(scope, receive, send)
            return
        await self._pass(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[str, int] | None:
        """(message, status) of the first check this request fails, or None."""
        first_host: bytes | None = None
        host = origin = fetch_site = None  # the last of each, as a dict of the headers would keep
        limit = self.overrides.get(scope["path"], self.max_bytes)
        too_large = False
        for name, value in scope["headers"]:
            if name == b"host":
                first_host = value if first_host is None else first_host
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
            elif name == b"content-length" and value.isdigit() and int(value) > limit:
                too_large = True
        if scope["path"] != "/healthz":
            refused = self._host_refusal(first_host)
            if refused is not None:
                return refused
        if scope["method"] in UNSAFE_METHODS and _cross_site(scope, host, origin, fetch_site):
            return CROSS_SITE, 403
        if too_large:
            return TOO_LARGE, 413
        return None

    def _host_refusal(self, first_host: bytes | None) -> tuple[str, int] | None:
        """421 for a Host this server does not answer to (CALLCHECK_ALLOWED_HOSTS)."""
        shown = host_name((first_host or b"").decode("latin-1"))
        if host_allowed(shown, self.allowed):
            return None
        shown = shown if len(shown) <= 100 else shown[:99] + "…"
        message = (
            f"This server does not answer to the host name {shown!r}. If it is reached by that name, add it "
            "to CALLCHECK_ALLOWED_HOSTS."
        )
        return message, 421

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.overrides.get(scope["path"], self.max_bytes)
        secure = scope.get("scheme") == "https"
        seen = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                if secure:
                    message = {**message, "headers": _secure_cookies(message.get("headers", []))}
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await error_response(TOO_LARGE, 413)(scope, receive, send)


def _secure_cookies(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers, every Set-Cookie marked Secure (a request that came over HTTPS)."""
    marked = []
    for name, value in headers:
        if name.lower() == b"set-cookie" and b"secure" not in value.lower():
            value = value + b"; Secure"
        marked.append((name, value))
    return marked


def _cross_site(scope: Scope, host: bytes | None, origin: bytes | None, fetch_site: bytes | None) -> bool:
    """True for a request a page of another site made a browser send.

    Browsers mark the requests they send for a page (`Origin`, `Sec-Fetch-Site`); curl, CI and ElevenLabs' webhooks
    send neither. A page elsewhere must not make a visitor's browser place a call.
    """
    scheme = scope.get("scheme", "http")
    own = f"{scheme}://{(host or b'').decode('latin-1')}".encode("latin-1")
    foreign = origin is not None and origin != b"null" and origin != own
    return fetch_site == b"cross-site" or foreign or origin == b"null"

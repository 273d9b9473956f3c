"""Logging in to the page with an API token, and out. The session cookie then carries the token's id (never the
token), and every state-changing request from the page carries the session's CSRF token."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from callcheck.edge.deps import ServicesDep
from callcheck.edge.guard import SESSION_CSRF_KEY, SESSION_TOKEN_KEY, csrf_matches, csrf_token
from callcheck.web.pages import PAGE_METHODS, page

router = APIRouter(include_in_schema=False)

EXPIRED_FORM = "This login form had expired. Please paste your token again."
WRONG_TOKEN = "That token is not valid: it is unknown, mistyped or revoked."


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this server only (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


def _login_page(request: Request, next_path: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    return page(
        request,
        "login.html",
        {"title": "Log in", "next": next_path, "error": error, "csrf": csrf_token(request.session)},
        status,
    )


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form (the body is capped by BodyLimit); first value of each field."""
    raw = (await request.body()).decode("utf-8", "replace")
    return {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}


@router.api_route("/login", methods=PAGE_METHODS, response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None) -> Response:  # the query's name
    """The login form: paste an API token."""
    return _login_page(request, safe_next(next))


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    """Check the token; on success remember its id in the session and go on to `next`."""
    form = await _form(request)
    next_path = safe_next(form.get("next"))
    if not csrf_matches(request.session, form.get("csrf")):
        return _login_page(request, next_path, EXPIRED_FORM, 403)
    identity = await services.store.tokens.identify(form.get("token", "").strip())
    if identity is None:
        return _login_page(request, next_path, WRONG_TOKEN, 401)
    request.session[SESSION_TOKEN_KEY] = identity.token_id
    request.session.pop(SESSION_CSRF_KEY, None)  # a new CSRF token for the logged-in session
    csrf_token(request.session)
    return RedirectResponse(next_path, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session's login."""
    form = await _form(request)
    if not csrf_matches(request.session, form.get("csrf")):
        return RedirectResponse("/", status_code=303)  # a forged logout changes nothing
    request.session.pop(SESSION_TOKEN_KEY, None)
    request.session.pop(SESSION_CSRF_KEY, None)
    return RedirectResponse("/login", status_code=303)

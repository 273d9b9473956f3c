"""Safe to expose: tokens and scopes, the page's login with CSRF, the Host allowlist, trusted proxies, the doctor's
cache and private file modes, against the real app (in-process ASGI) on SQLite or PostgreSQL and the sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import re
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from callcheck.domain.access import TokenScope, split_token
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.store import db
from callcheck.store.tables import tokens
from callcheck.store.tokens import ACTIVE_FRESH_S, TokenStore
from tests.conftest import BACKEND, settings_for
from tests.servers import outbound_calls
from tests.test_runs_api import wait_run
from tests.waiting import wait_for_call

PIZZA = {"to_number": "+15550100001", "business_description": "We are Pizza Palace.", "scenario": "order a pizza"}


def services_of(client: httpx.AsyncClient) -> Any:
    return client.callcheck_app.state.services  # type: ignore[attr-defined]


async def make_token(client: httpx.AsyncClient, name: str, scope: TokenScope) -> str:
    _row, token = await services_of(client).store.tokens.create(name, scope)
    return str(token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def other_client(like: httpx.AsyncClient, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """A second client on the same app (its own cookie jar)."""
    return httpx.AsyncClient(transport=like._transport, base_url=base_url)


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    """The app without workers (calls are placed, not followed)."""
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path, workers=False))
    return client


@pytest.fixture
async def working_api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    """The app with its workers: calls and runs go to their end."""
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


# -- tokens ---------------------------------------------------------------------------------------------------


async def test_without_any_token_the_local_server_stays_open(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/call", json=PIZZA)).status_code == 200
    # As before tokens existed, an Authorization header is ignored.
    assert (await api.get("/api/calls", headers={"Authorization": "Bearer whatever"})).status_code == 200
    assert (await api.get("/api/calls")).status_code == 200
    page = await api.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Log out" not in page.text


async def test_once_a_token_exists_every_route_but_the_open_ones_needs_one(api: httpx.AsyncClient) -> None:
    await make_token(api, "ci", TokenScope.CALL)
    for method, path in [
        ("GET", "/api/calls"),
        ("GET", "/api/calls/nope"),
        ("GET", "/api/calls/nope/audio"),
        ("GET", "/api/runs"),
        ("POST", "/api/call"),
        ("POST", "/api/context"),
        ("DELETE", "/api/runs/nope"),
        ("GET", "/api/doctor"),
        ("GET", "/openapi.json"),
        ("GET", "/calls"),
    ]:
        answer = await api.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"].startswith("This server needs an API token"), (method, path)
        assert answer.headers["www-authenticate"].startswith("Bearer")
    # Open: readiness, the static files of the login page, the login page itself.
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/static/app.css")).status_code == 200
    assert (await api.get("/login")).status_code == 200
    # The webhook is not asked for a token (it is refused for its own reason: no signature secret is configured).
    hook = await api.post("/api/webhooks/elevenlabs", json={"type": "post_call_transcription"})
    assert hook.status_code != 401 or "API token" not in hook.text
    # A person's browser is sent to the login page, and back afterwards.
    page = await api.get("/calls?status=completed", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/calls%3Fstatus%3Dcompleted"


async def _status_until(api: httpx.AsyncClient, wanted: int, *, within: float) -> int:
    """GET /api/calls until it answers `wanted` or `within` seconds pass; the last status."""
    deadline = time.monotonic() + within
    status = (await api.get("/api/calls")).status_code
    while status != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        status = (await api.get("/api/calls")).status_code
    return status


async def test_a_token_made_by_another_process_is_enforced_within_the_documented_bound(
    api: httpx.AsyncClient,
) -> None:
    # `callcheck token create` beside a running server: its own engine and store on the same database.
    assert (await api.get("/api/calls")).status_code == 200  # open, and the answer now kept by the server
    url = services_of(api).settings.resolved_database_url()
    engine = db.create_engine(url)
    try:
        cli_tokens = TokenStore(engine)
        await cli_tokens.create("from-the-cli", TokenScope.READ)
        # Within ACTIVE_FRESH_S the server notices (the bound allows for a slow machine's requests on top).
        assert await _status_until(api, 401, within=ACTIVE_FRESH_S + 10) == 401
        await cli_tokens.revoke("from-the-cli")
        assert await _status_until(api, 200, within=ACTIVE_FRESH_S + 10) == 200
    finally:
        await engine.dispose()


async def test_a_token_made_through_this_server_counts_at_once(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/calls")).status_code == 200  # the "no token" answer is kept...
    await make_token(api, "at-once", TokenScope.READ)
    assert (await api.get("/api/calls")).status_code == 401  # ...and forgotten by the store that made one
    await services_of(api).store.tokens.revoke("at-once")
    assert (await api.get("/api/calls")).status_code == 200


async def test_a_call_token_places_calls_which_record_its_name(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "ci-bot", TokenScope.CALL)
    placed = await api.post("/api/call", json=PIZZA, headers=bearer(token))
    assert placed.status_code == 200, placed.text
    detail = (await api.get(f"/api/calls/{placed.json()['id']}", headers=bearer(token))).json()
    assert detail["token_name"] == "ci-bot"
    listed = (await api.get("/api/calls", headers=bearer(token))).json()["calls"]
    assert [c["token_name"] for c in listed] == ["ci-bot"]
    history = await api.get("/calls", headers={**bearer(token), "Accept": "text/html"})
    assert history.status_code == 200 and "ci-bot" in history.text


async def test_a_read_token_cannot_place_calls_or_change_anything(
    api: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    token = await make_token(api, "viewer", TokenScope.READ)
    refused = await api.post("/api/call", json=PIZZA, headers=bearer(token))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"
    assert "'read'" in refused.json()["error"] and "'call'" in refused.json()["error"]
    changes = [("POST", "/api/context"), ("POST", "/api/runs"), ("DELETE", "/api/runs/x"), ("POST", "/runs/start")]
    for method, path in changes:
        answer = await api.request(method, path, json={"description": "x"}, headers=bearer(token))
        assert answer.status_code == 403, (method, path)
    assert (await api.get("/api/doctor", headers=bearer(token))).status_code == 403
    assert (await api.get("/api/calls", headers=bearer(token))).status_code == 200
    assert outbound_calls(sandbox) == []  # nothing was dialed


async def test_doctor_needs_an_admin_token(api: httpx.AsyncClient) -> None:
    call = await make_token(api, "caller", TokenScope.CALL)
    admin = await make_token(api, "root", TokenScope.ADMIN)
    assert (await api.get("/api/doctor", headers=bearer(call))).status_code == 403
    assert (await api.get("/api/doctor", headers=bearer(admin))).status_code == 200
    # The page's setup panel says so instead of failing.
    part = await api.get("/parts/setup", headers=bearer(call))
    assert part.status_code == 200 and "admin scope" in part.text


async def test_wrong_malformed_and_revoked_tokens_are_refused(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "temp", TokenScope.ADMIN)
    await make_token(api, "stays", TokenScope.READ)  # revoking the last token would open a local server again
    token_id, secret = split_token(token) or ("", "")
    for wrong in [f"cc_{token_id}_{secret[:-1]}x", "cc_nothex_secret", "garbage", token + "x"]:
        answer = await api.get("/api/calls", headers=bearer(wrong))
        assert answer.status_code == 401 and "not valid" in answer.json()["error"], wrong
    assert (await api.get("/api/calls", headers=bearer(token))).status_code == 200
    await services_of(api).store.tokens.revoke("temp")
    assert (await api.get("/api/calls", headers=bearer(token))).status_code == 401


async def test_tokens_are_stored_hashed_and_names_are_never_reused(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "hashed", TokenScope.CALL)
    await api.get("/api/calls", headers=bearer(token))
    async with services_of(api).store.engine.connect() as conn:
        row = (await conn.execute(sa.select(tokens))).one()
    _, secret = split_token(token) or ("", "")
    assert token not in str(tuple(row)) and secret not in str(tuple(row))
    assert row.hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.last_used_at is not None
    from callcheck.errors import Conflict

    await services_of(api).store.tokens.revoke("hashed")
    with pytest.raises(Conflict):
        await services_of(api).store.tokens.create("hashed", TokenScope.READ)


async def test_a_bearer_clients_context_is_its_tokens_own(api: httpx.AsyncClient) -> None:
    one = await make_token(api, "one", TokenScope.CALL)
    two = await make_token(api, "two", TokenScope.CALL)
    # Three cookie-less clients (curl): the context one token sets is its own.
    async with other_client(api) as first, other_client(api) as second, other_client(api) as again:
        first.cookies.clear()
        saved = await first.post(
            "/api/context", json={"description": "Business of one.", "scenario": "goal one"}, headers=bearer(one)
        )
        assert saved.status_code == 200
        missing = await second.post("/api/call", json={"to_number": "+15550100001"}, headers=bearer(two))
        assert missing.status_code == 400  # the second token has no context: its call needs a description
        placed = await again.post("/api/call", json={"to_number": "+15550100001"}, headers=bearer(one))
        assert placed.json()["scenario"] == "goal one"


async def test_runs_record_their_token_and_its_calls_too(working_api: httpx.AsyncClient) -> None:
    api = working_api
    token = await make_token(api, "suite-bot", TokenScope.CALL)
    suite = {
        "name": "tiny",
        "business": "We are Pizza Palace.",
        "number": "+15550100001",
        "scenarios": [{"name": "order", "goal": "order a pizza", "expect": [{"final_state": "completed"}]}],
    }
    async with other_client(api) as authed:
        authed.headers.update(bearer(token))
        started = await authed.post("/api/runs", json=suite)
        assert started.status_code == 202, started.text
        assert started.json()["token_name"] == "suite-bot"
        run = await wait_run(authed, started.json()["id"])
        assert run["report"]["token_name"] == "suite-bot"
        call = (await authed.get(f"/api/calls/{run['items'][0]['call_id']}")).json()
        assert call["token_name"] == "suite-bot"
        assert (await authed.get("/api/runs")).json()["runs"][0]["token_name"] == "suite-bot"


# -- the page's login, its session cookie and CSRF ---------------------------------------------------------------


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def log_in(client: httpx.AsyncClient, token: str, next_path: str = "/") -> httpx.Response:
    form = await client.get(f"/login?next={next_path}")
    return await client.post(
        "/login",
        data={"token": token, "csrf": csrf_of(form.text), "next": next_path},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )


async def test_login_sets_an_httponly_samesite_cookie_and_csrf_guards_changes(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "person", TokenScope.CALL)
    async with other_client(api) as browser:
        answer = await log_in(browser, token, "/calls")
        assert answer.status_code == 303 and answer.headers["location"] == "/calls"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # plain http here
        page = await browser.get("/calls", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "Logged in as" in page.text and "person" in page.text
        csrf = csrf_of(page.text)
        # A state-changing request from the session without the page's CSRF token is refused...
        body = {"description": "A shop.", "scenario": "buy"}
        refused = await browser.post("/api/context", json=body)
        assert refused.status_code == 403 and "form token" in refused.json()["error"]
        wrong = await browser.post("/api/context", json=body, headers={"X-CSRF-Token": csrf + "x"})
        assert wrong.status_code == 403
        # ...and accepted with it.
        assert (await browser.post("/api/context", json=body, headers={"X-CSRF-Token": csrf})).status_code == 200
        # Logging out needs the token too (a forged logout changes nothing), then the session is anonymous again.
        await browser.post("/logout", data={"csrf": "forged"})
        assert (await browser.get("/api/calls")).status_code == 200
        out = await browser.post("/logout", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await browser.get("/api/calls")).status_code == 401


async def test_login_refuses_a_wrong_token_a_stale_form_and_a_foreign_next(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "person", TokenScope.READ)
    async with other_client(api) as browser:
        form = await browser.get("/login")
        csrf = csrf_of(form.text)
        wrong = await browser.post("/login", data={"token": "cc_0123456789abcdef_nope", "csrf": csrf})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        stale = await browser.post("/login", data={"token": token, "csrf": "old"})
        assert stale.status_code == 403 and "expired" in stale.text
        assert (await browser.get("/api/calls")).status_code == 401
        away = await browser.post("/login", data={"token": token, "csrf": csrf, "next": "//evil.example/"})
        assert away.status_code == 303 and away.headers["location"] == "/"
        assert (await browser.get("/api/calls")).status_code == 200


async def test_revoking_a_token_ends_its_logged_in_sessions(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "leaver", TokenScope.CALL)
    await make_token(api, "stayer", TokenScope.CALL)
    async with other_client(api) as browser:
        await log_in(browser, token)
        assert (await browser.get("/api/calls")).status_code == 200
        await services_of(api).store.tokens.revoke("leaver")
        assert (await browser.get("/api/calls")).status_code == 401


async def test_a_read_session_cannot_place_calls_even_with_the_csrf_token(api: httpx.AsyncClient) -> None:
    token = await make_token(api, "watcher", TokenScope.READ)
    async with other_client(api) as browser:
        await log_in(browser, token)
        csrf = csrf_of((await browser.get("/calls", headers={"Accept": "text/html"})).text)
        refused = await browser.post("/api/call", json=PIZZA, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403 and "'read'" in refused.json()["error"]


# -- Host allowlist (DNS rebinding) and trusted proxies ------------------------------------------------------------

REBIND = {
    "Host": "rebind.attacker.example:5000",
    "Origin": "http://rebind.attacker.example:5000",
    "Content-Type": "application/json",
}


async def test_the_rebinding_request_of_the_issue_is_refused(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    answer = await api.post(
        "/api/call", content=b'{"to_number":"+15550100001","business_description":"x"}', headers=REBIND
    )
    assert answer.status_code == 421
    assert "rebind.attacker.example" in answer.json()["error"] and "CALLCHECK_ALLOWED_HOSTS" in answer.json()["error"]
    assert (await api.get("/api/calls", headers={"Host": "rebind.attacker.example"})).status_code == 421
    assert outbound_calls(sandbox) == []
    # Readiness answers whatever the Host (load balancers probe by address or internal name).
    assert (await api.get("/healthz", headers={"Host": "lb.internal.example"})).status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost:5000", "127.0.0.1:5000", "[::1]:5000", "10.1.2.3", "testserver", "a.localhost"]
)
async def test_loopback_names_addresses_and_single_labels_are_answered(api: httpx.AsyncClient, host: str) -> None:
    assert (await api.get("/api/calls", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_and_the_public_urls_host_are_answered(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(
        sandbox,
        tmp_path,
        workers=False,
        allowed_hosts="callcheck.example.com, Other.Example.org",
        public_url="https://hooks.example.net/base",
    )
    api = await client_for(settings)
    for host in ["callcheck.example.com", "other.example.org:8443", "hooks.example.net"]:
        assert (await api.get("/api/calls", headers={"Host": host})).status_code == 200, host
    assert (await api.get("/api/calls", headers={"Host": "evil.example.com"})).status_code == 421


async def test_behind_a_trusted_https_proxy_the_page_can_post_and_its_cookie_is_secure(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # httpx's ASGI transport connects from 127.0.0.1: the proxy here.
    settings = settings_for(
        sandbox, tmp_path, workers=False, trusted_proxies="127.0.0.1/32", allowed_hosts="callcheck.example.com"
    )
    api = await client_for(settings)
    proxied = {
        "Host": "127.0.0.1:5000",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "callcheck.example.com",
        "X-Forwarded-For": "203.0.113.9",
        "Origin": "https://callcheck.example.com",
        "Sec-Fetch-Site": "same-origin",
    }
    answer = await api.post("/api/context", json={"description": "A shop."}, headers=proxied)
    assert answer.status_code == 200, answer.text
    assert "secure" in answer.headers["set-cookie"].lower()


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(
        sandbox, tmp_path, workers=False, trusted_proxies="10.0.0.0/8", allowed_hosts="callcheck.example.com"
    )
    api = await client_for(settings)
    spoofed = {
        "Host": "127.0.0.1:5000",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "callcheck.example.com",
        "Origin": "https://callcheck.example.com",
    }
    answer = await api.post("/api/context", json={"description": "A shop."}, headers=spoofed)
    assert answer.status_code == 403 and answer.json()["error"] == "Cross-site requests are refused."
    # Nor does a forwarded Host get a refused name past the allowlist.
    sneaky = await api.get("/api/calls", headers={"Host": "rebind.attacker.example", "X-Forwarded-Host": "localhost"})
    assert sneaky.status_code == 421


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not an IP address or CIDR network"):
        settings_for(None, tmp_path, trusted_proxies="proxy.example.com")


# -- the doctor's cache -----------------------------------------------------------------------------------------


async def test_the_doctor_asks_elevenlabs_once_a_minute_at_most(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    def upstream_requests() -> int:
        return len(httpx.get(f"{sandbox.url}/_sandbox/requests").json())

    before = upstream_requests()
    first = await api.get("/api/doctor")
    asked = upstream_requests() - before
    assert first.status_code == 200 and asked >= 2
    for _ in range(5):
        assert (await api.get("/api/doctor")).json() == first.json()
    await api.get("/parts/setup")
    assert upstream_requests() - before == asked  # nothing more went upstream
    services_of(api).doctor.max_age_s = 0.0  # once the report is too old, it is made afresh
    await api.get("/api/doctor")
    assert upstream_requests() - before == 2 * asked


# -- files ------------------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_directory_and_its_files_are_private(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path, secret_key=None)
    api = await client_for(settings)
    await api.get("/api/calls")
    data = tmp_path / "data"
    assert mode(data) == 0o700
    # PostgreSQL keeps its data in its own server: there, only the cookie key is callcheck's file.
    names = ["secret_key"]
    if BACKEND == "sqlite":
        names += ["callcheck.db", "callcheck.db-wal", "callcheck.db-shm", "callcheck-dbos.sqlite"]
    for name in names:
        assert (data / name).exists(), name
        assert mode(data / name) == 0o600, name


async def test_recordings_are_private(working_api: httpx.AsyncClient, tmp_path: Path) -> None:
    placed = await working_api.post("/api/call", json=PIZZA)
    call = await wait_for_call(working_api, placed.json()["id"], {"completed"}, recording=True)
    recording = tmp_path / "data" / "recordings" / f"{call['id']}.mp3"
    assert recording.exists()
    assert mode(recording) == 0o600 and mode(recording.parent) == 0o700 and mode(tmp_path / "data") == 0o700


async def test_loose_modes_left_by_an_older_callcheck_are_tightened_at_start(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    data.chmod(0o755)
    (data / "recordings").chmod(0o755)
    old = data / "recordings" / "old.mp3"
    old.write_bytes(b"ID3")
    old.chmod(0o644)
    loose = data / "callcheck.db"
    if BACKEND == "sqlite":
        loose.touch(mode=0o644)
        loose.chmod(0o644)
    await client_for(settings_for(sandbox, tmp_path, workers=False))
    assert mode(data) == 0o700 and mode(data / "recordings") == 0o700 and mode(old) == 0o600
    if BACKEND == "sqlite":
        assert mode(loose) == 0o600


async def test_only_callchecks_own_files_are_tightened(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    # CALLCHECK_DATA_DIR may name a directory that holds other things: they are left as they are.
    data = tmp_path / "data"
    (data / "notes").mkdir(parents=True)
    (data / "notes").chmod(0o755)
    other = data / "notes" / "readme.txt"
    other.write_text("mine")
    other.chmod(0o644)
    await client_for(settings_for(sandbox, tmp_path, workers=False))
    assert mode(data) == 0o700 and mode(data / "notes") == 0o755 and mode(other) == 0o644


# -- token management over the API ------------------------------------------------------------------------------


async def test_admins_manage_tokens_over_the_api(api: httpx.AsyncClient) -> None:
    # A local server without tokens is open, but not for making tokens: the first one is made on the command line.
    first = await api.post("/api/tokens", json={"name": "sneaky", "scope": "admin"})
    assert first.status_code == 403 and "callcheck token create" in first.json()["error"]
    assert (await api.get("/api/tokens")).status_code == 403
    admin = await make_token(api, "root", TokenScope.ADMIN)
    caller = await make_token(api, "caller", TokenScope.CALL)
    assert (await api.get("/api/tokens", headers=bearer(caller))).status_code == 403
    made = await api.post("/api/tokens", json={"name": "new-bot", "scope": "read"}, headers=bearer(admin))
    assert made.status_code == 201 and made.json()["scope"] == "read"
    new_token = made.json()["token"]
    assert (await api.get("/api/calls", headers=bearer(new_token))).status_code == 200
    listed = (await api.get("/api/tokens", headers=bearer(admin))).json()["tokens"]
    assert sorted(t["name"] for t in listed) == ["caller", "new-bot", "root"]
    assert all("token" not in t and "hash" not in t for t in listed)
    for body, status in [
        ({"name": "new-bot"}, 409),
        ({"name": "bad name"}, 400),
        ({"name": "x", "scope": "root"}, 400),
        ({"name": 5}, 400),
    ]:
        answer = await api.post("/api/tokens", json=body, headers=bearer(admin))
        assert answer.status_code == status and "error" in answer.json(), body
    revoked = await api.delete("/api/tokens/new-bot", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await api.get("/api/calls", headers=bearer(new_token))).status_code == 401
    assert (await api.delete("/api/tokens/nobody", headers=bearer(admin))).status_code == 404


async def test_badges_are_public_only_when_the_server_says_so(
    api: httpx.AsyncClient, client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The route answers 404 for a monitor that does not exist: reaching it at all shows the guard let it through.
    await make_token(api, "reader", TokenScope.READ)
    assert (await api.get("/badge/monitors/none.svg")).status_code == 401
    public = await client_for(settings_for(sandbox, tmp_path / "public", workers=False, public_badges=True))
    await make_token(public, "reader", TokenScope.READ)
    assert (await public.get("/badge/monitors/none.svg")).status_code == 404
    assert (await public.get("/api/calls")).status_code == 401  # nothing else opens with it
    assert (await public.get("/api/monitors")).status_code == 401

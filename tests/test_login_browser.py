"""The page's login in a real browser (Debian's chromium through Playwright): a server with tokens sends a person
to the login page, the session then places calls through the page's own fetches (which carry the CSRF token), a
request without that token is refused, and logging out ends it all."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from callcheck.cli.token import _with_tokens
from callcheck.domain.access import TokenScope
from callcheck.store.tokens import TokenRow, TokenStore
from tests.browsing import ARTIFACTS, BROWSER_MARKS, chromium, sandbox_app, watched_page
from tests.servers import AppServer
from tests.test_web_browser import place

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    with sandbox_app(tmp_path_factory.mktemp("login"), 0.02) as app_server:
        yield app_server


async def _create(store: TokenStore, name: str, scope: TokenScope) -> tuple[TokenRow, str]:
    return await store.create(name, scope)


@pytest.fixture(scope="module")
def tokens(server: AppServer) -> dict[str, str]:
    """A call token and a read token, made as `callcheck token create` makes them (the server is already up)."""
    made = {}
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        for name, scope in [("front-desk", TokenScope.CALL), ("auditor", TokenScope.READ)]:
            create = functools.partial(
                _with_tokens, server.settings, functools.partial(_create, name=name, scope=scope)
            )
            _row, made[name] = pool.submit(create).result()
    return made


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(playwright_sync) as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with watched_page(browser, "", 20_000) as tab:
        yield tab


def log_in(page: Any, url: str, token: str, path: str = "/calls") -> None:
    page.goto(url + path)
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + path)


def test_log_in_place_a_call_and_log_out(page: Any, server: AppServer, tokens: dict[str, str]) -> None:
    url = server.url
    # Not logged in: every page leads to the login form.
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.get_by_label("API token").fill("cc_0123456789abcdef_wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("not valid")

    log_in(page, url, tokens["front-desk"], "/")
    expect(page.locator("#logged-in-as")).to_have_text("front-desk")
    cookie = next(c for c in page.context.cookies() if c["name"] == "callcheck_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    call_id = place(page, url, "+15550100001")  # the page's fetches carry the CSRF token: the call is placed
    page.goto(url + "/calls")
    row = page.locator("tbody tr").filter(has=page.locator(f'a[href="/calls/{call_id}"]'))
    expect(row).to_contain_text("front-desk")
    page.screenshot(path=str(ARTIFACTS / "login-history.png"), full_page=True)

    # The same session without the page's CSRF token (what a forged request would be) is refused.
    forged = page.context.request.post(url + "/api/context", data={"description": "Forged."}, headers={"Origin": url})
    assert forged.status == 403 and "form token" in forged.json()["error"]

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(url + "/calls")
    expect(page).to_have_url(re.compile(r"/login\?next=/calls$"))
    assert page.context.request.get(url + "/api/calls").status == 401


def test_a_read_token_sees_calls_but_the_form_says_it_cannot_place_one(
    page: Any, server: AppServer, tokens: dict[str, str]
) -> None:
    url = server.url
    log_in(page, url, tokens["auditor"], "/")
    expect(page.locator("#logged-in-as")).to_have_text("auditor")
    page.get_by_label("Business description").fill("Rosie's Bakery.")
    page.get_by_label("Phone number to call").fill("+15550100001")
    page.get_by_role("button", name="Place the call").click()
    expect(page.locator("#form-error")).to_contain_text("'read' scope")
    expect(page).to_have_url(url + "/")
    expect(page.locator("#doctor")).to_contain_text("admin scope")

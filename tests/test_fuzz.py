"""schemathesis against the real app (uvicorn on loopback, the sandbox as ElevenLabs): every operation of
/openapi.json, fuzzed, answers no 5xx and nothing its description does not declare (status, content type, body
schema, headers). Bounded (a few examples per operation) so it stays minutes on two cores; `-m "not fuzz"` leaves
it out of a quick run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.domain.access import TokenScope
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.store import db
from callcheck.store.repo import Store
from tests.conftest import settings_for
from tests.servers import AppServer

Case = schemathesis.Case[Any]  # a request to one operation of the description (any kind of operation)

pytestmark = [
    pytest.mark.fuzz,
    # schemathesis' own strategies draw from `random`, which this Hypothesis deprecates; not ours to change.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = 20  # per operation and server: sixteen operations on two servers, a few hundred requests in all


@pytest.fixture(scope="module", params=["open", "with-token"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real callcheck (workers on, webhooks verified) in front of the sandbox: open (no token exists), or with an
    admin token that every request carries (once a token exists, every route but two needs one)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with SandboxServer(SandboxConfig(time_scale=0.02)) as sandbox:
        settings = settings_for(sandbox, tmp, elevenlabs_webhook_secret="whsec-fuzz-0123456789abcdef")
        headers: dict[str, str] = {}
        if request.param == "with-token":
            headers["Authorization"] = f"Bearer {asyncio.run(_admin_token(settings))}"
        with AppServer(settings) as app:
            yield Served(app.url, headers)


class Served(NamedTuple):
    url: str
    headers: dict[str, str]


async def _admin_token(settings: Settings) -> str:
    await asyncio.to_thread(db.upgrade, settings.resolved_database_url())
    engine = db.create_engine(settings.resolved_database_url())
    try:
        _row, token = await Store(engine).tokens.create("fuzz", TokenScope.ADMIN)
    finally:
        await engine.dispose()
    return str(token)


# The description the served app gives: built from an app of the same code (building one touches no disk and no
# network), so the operations are known when pytest collects them.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None, secret_key=SecretStr("fuzz-secret-key-0123456789-abcdefghij"))).openapi()  # type: ignore[call-arg]
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_operation_answers_within_its_description(served: Served, case: Case) -> None:
    case.call_and_validate(base_url=served.url, headers=served.headers, checks=CHECKS, timeout=30)


class Workflows(schema.as_state_machine()):  # type: ignore[misc]  # schemathesis builds the class at run time
    """Sequences that follow the description's links: place a call then read it, start a run then read or cancel it."""

    base_url = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - set once per run, read by every step

    def get_call_kwargs(self, case: Case) -> dict[str, object]:
        return {"base_url": self.base_url, "headers": self.headers, "timeout": 30}

    def validate_response(self, response: object, case: Case, **kwargs: object) -> None:
        case.validate_response(response, checks=CHECKS)


def test_linked_operations_answer_within_their_description(served: Served) -> None:
    Workflows.base_url, Workflows.headers = served
    Workflows.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )

"""Who may be called: the agent's own country by default, never premium-rate or international-network numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from callcheck.config import Settings, settings_problems
from callcheck.domain.destinations import DialRules, Kind, Rule, classify, refusal
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.servers import outbound_calls
from tests.test_cli_run import run_cli

PIZZA = "We are Pizza Palace."
PHONE_NUMBERS = "/v1/convai/phone-numbers"


@pytest.mark.parametrize(
    ("number", "kind", "code"),
    [
        ("+15550100001", Kind.ORDINARY, 1),  # the sandbox's magic numbers: invalid to libphonenumber, still +1
        ("+14155550123", Kind.ORDINARY, 1),
        ("+18005550123", Kind.ORDINARY, 1),  # toll-free costs the caller nothing
        ("+19005550123", Kind.PREMIUM, 1),  # NANP 900 (libphonenumber)
        ("+19765550123", Kind.PREMIUM, 1),  # NANP area code 976 (ours)
        ("+12129765555", Kind.PREMIUM, 1),  # the 976 exchange of any area code (ours)
        ("+449012345678", Kind.PREMIUM, 44),  # UK 09
        ("+448712345678", Kind.PREMIUM, 44),  # UK 0871 service numbers
        ("+33810123456", Kind.SHARED_COST, 33),  # France 0810
        ("+611300123456", Kind.SHARED_COST, 61),  # Australia 1300
        ("+882130000000", Kind.NETWORK, 882),
        ("+979123456789", Kind.NETWORK, 979),  # international premium rate
        ("+80012345678", Kind.NETWORK, 800),
        ("+881612345678", Kind.NETWORK, 881),  # satellite
        ("+247123456", Kind.ORDINARY, 247),  # Ascension: a country, so the country rule decides
        ("+99912345678", Kind.UNASSIGNED, None),
    ],
)
def test_numbers_are_classified_by_calling_code_and_kind(number: str, kind: Kind, code: int | None) -> None:
    destination = classify(number)
    assert (destination.kind, destination.calling_code) == (kind, code)


def test_the_default_allows_only_the_agents_own_country() -> None:
    rules = DialRules.parse(None, None)
    assert refusal("+15550100001", rules, home=1) is None
    refused = refusal("+442071234567", rules, home=1)
    assert refused is not None and refused.rule is Rule.COUNTRY and "+44" in refused.message
    assert refusal("+442071234567", rules, home=44) is None
    unknown = refusal("+15550100001", rules, home=None)
    assert unknown is not None and unknown.rule is Rule.HOME_UNKNOWN
    assert "CALLCHECK_ALLOWED_COUNTRIES" in unknown.message


def test_premium_and_network_numbers_stay_refused_whatever_the_countries() -> None:
    for countries in (None, "1,44", "*"):
        rules = DialRules.parse(countries, None)
        for number, rule in (
            ("+19005550123", Rule.PREMIUM),
            ("+448712345678", Rule.PREMIUM),
            ("+882130000000", Rule.NETWORK),
            ("+979123456789", Rule.NETWORK),
            ("+99912345678", Rule.NETWORK),
        ):
            refused = refusal(number, rules, home=1)
            assert refused is not None and refused.rule is rule, (countries, number)


def test_allowed_countries_widen_or_narrow_the_default() -> None:
    assert refusal("+442071234567", DialRules.parse("1,44", None), home=1) is None
    assert refusal("+442071234567", DialRules.parse("*", None), home=1) is None
    assert refusal("+247123456", DialRules.parse("*", None), home=1) is None
    narrowed = refusal("+15550100001", DialRules.parse("44", None), home=1)
    assert narrowed is not None and narrowed.rule is Rule.COUNTRY
    none = refusal("+15550100001", DialRules.parse("none", None), home=1)
    assert none is not None and none.rule is Rule.COUNTRY


def test_allowed_numbers_admit_prefixes_and_premium_numbers_only_named_in_full() -> None:
    rules = DialRules.parse("none", "+44207, +19005550123")
    assert refusal("+442071234567", rules, home=1) is None  # by prefix, whatever the country
    assert refusal("+19005550123", rules, home=1) is None  # premium, named in full
    premium_by_prefix = refusal("+19005550124", DialRules.parse(None, "+1900"), home=1)
    assert premium_by_prefix is not None and premium_by_prefix.rule is Rule.PREMIUM
    assert refusal("+882130000000", DialRules.parse(None, "+882130000000"), home=1) is None
    assert refusal("+15550100001", rules, home=1) is not None  # `none`: only the numbers listed


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"allowed_countries": "1,x"}, "invalid setting CALLCHECK_ALLOWED_COUNTRIES: 'x' is not a calling code"),
        ({"allowed_countries": "882"}, "invalid setting CALLCHECK_ALLOWED_COUNTRIES: +882 is not the calling code"),
        ({"allowed_countries": "999"}, "invalid setting CALLCHECK_ALLOWED_COUNTRIES: +999 is not the calling code"),
        ({"allowed_numbers": "15551234567"}, "invalid setting CALLCHECK_ALLOWED_NUMBERS: '15551234567' is not an"),
    ],
)
def test_malformed_rules_are_one_line_naming_the_setting(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    (line,) = settings_problems(caught.value)
    assert line.startswith(problem), line


def phone_number_lookups(sandbox: SandboxServer) -> int:
    answer = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": PHONE_NUMBERS})
    return len(answer.json())


async def test_the_api_refuses_other_countries_premium_and_networks_with_a_403_naming_the_rule(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    for number, rule in (
        ("+442071234567", "country"),
        ("+19005550123", "premium"),
        ("+12129765555", "premium"),
        ("+882130000000", "network"),
        ("+979123456789", "network"),
        ("+247123456", "country"),
    ):
        response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
        assert response.status_code == 403, (number, response.text)
        assert response.json()["rule"] == rule and response.json()["error"].startswith("Calls to +")
    assert outbound_calls(sandbox) == []
    assert (await api.get("/api/calls")).json()["calls"] == []  # a refused call leaves nothing behind
    # The sandbox agent's number is +1: its magic numbers are callable by default.
    placed = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": PIZZA})
    assert placed.status_code == 200, placed.text
    await api.post("/api/call", json={"to_number": "+15550100004", "business_description": PIZZA})
    assert phone_number_lookups(sandbox) == 1  # the agent's country is asked once, then kept


async def test_the_seeds_checks_come_first(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    missing = await api.post("/api/call", json={"to_number": "+19005550123"})
    assert missing.json() == {"error": "Provide a business description first."}
    bad = await api.post("/api/call", json={"to_number": "+1900", "business_description": PIZZA})
    assert bad.json() == {"error": "Phone number must be in E.164 format, for example +15551234567."}
    unset = await client_for(settings_for(None, tmp_path / "unset", workers=False))
    response = await unset.post("/api/call", json={"to_number": "+882130000000", "business_description": PIZZA})
    assert response.status_code == 500 and response.json()["error"].startswith("Missing required environment")


async def test_allowed_settings_widen_the_default(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(
        settings_for(sandbox, tmp_path, workers=False, allowed_countries="1,44", allowed_numbers="+19005550123")
    )
    for number in ("+442071234567", "+19005550123"):
        response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
        assert response.status_code == 200, response.text
    refused = await api.post("/api/call", json={"to_number": "+33123456789", "business_description": PIZZA})
    assert refused.status_code == 403 and refused.json()["rule"] == "country"
    assert phone_number_lookups(sandbox) == 0  # the countries are given: the agent's number is not needed


async def test_an_agent_number_that_cannot_be_learned_refuses_every_number_not_named(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(
        settings_for(
            sandbox,
            tmp_path,
            workers=False,
            elevenlabs_agent_phone_number_id="phnum_unknown",
            allowed_numbers="+15550100004",
        )
    )
    response = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": PIZZA})
    assert response.status_code == 403 and response.json()["rule"] == "agent_country_unknown"
    assert "CALLCHECK_ALLOWED_COUNTRIES" in response.json()["error"]
    named = await api.post("/api/call", json={"to_number": "+15550100004", "business_description": PIZZA})
    assert named.status_code != 403  # named in CALLCHECK_ALLOWED_NUMBERS: no need of the agent's country
    assert len(outbound_calls(sandbox)) <= 1


SUITE = {
    "business": "Pizza Palace",
    "number": "+15550100001",
    "scenarios": [
        {"name": "order", "goal": "order a pizza", "expect": [{"reached_human": False}]},
        {"name": "abroad", "goal": "order", "number": "+442071234567", "expect": [{"reached_human": False}]},
    ],
}


async def test_a_suite_with_a_refused_number_does_not_start(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path))
    response = await api.post("/api/runs", json=SUITE)
    assert response.status_code == 403 and response.json()["rule"] == "country", response.text
    assert "+44" in response.json()["error"]
    assert (await api.get("/api/runs")).json()["runs"] == []
    page = await api.post(
        "/runs/start",
        json={
            "suite": "business: b\nnumber: '+19005550123'\nscenarios:\n"
            "  - {name: a, goal: g, expect: [{reached_human: false}]}\n"
        },
    )
    assert page.status_code == 403 and page.json()["rule"] == "premium"
    assert outbound_calls(sandbox) == []


def test_callcheck_run_with_a_refused_number_exits_2_with_the_reason(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(CLI_SUITE.format(second_number="+19005550123"))
    result = run_cli(tmp_path, "run", str(suite), "--sandbox")
    assert result.returncode == 2, result.stderr
    assert "Calls to +19005550123 are refused: it is a premium-rate number." in result.stderr


def test_callcheck_run_too_large_exits_2_before_anything_starts(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(CLI_SUITE.format(second_number="+15550100004"))
    result = run_cli(tmp_path, "run", str(suite), "--dry-run", extra_env={"CALLCHECK_MAX_CALLS_PER_RUN": "1"})
    assert result.returncode == 2
    assert "over CALLCHECK_MAX_CALLS_PER_RUN (1)" in result.stderr


CLI_SUITE = """\
business: We are Pizza Palace.
number: "+15550100001"
scenarios:
  - {{name: order, goal: order a pizza, expect: [{{final_state: completed}}]}}
  - {{name: other, goal: order a pizza, number: "{second_number}", expect: [{{final_state: completed}}]}}
"""

"""`suggest_suite`: a deterministic starter suite by business type that always loads."""

from __future__ import annotations

from typing import Any

import pytest

from callcheck.domain.suggest import PLACEHOLDER_NUMBER, business_type, suggest_suite
from callcheck.domain.suite import load_suite
from callcheck.errors import InvalidInput


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("We are Pizza Palace, a pizza restaurant that takes orders and handles delivery.", "restaurant"),
        ("Bright Smile, a family dental clinic accepting new patients.", "clinic"),
        ("Downtown hair salon and nail spa, bookings by phone.", "salon"),
        ("Acme ISP technical support helpdesk for internet outages.", "support"),
        ("An electronics store with a generous returns policy.", "retail"),
        ("Seaside Hotel, 40 rooms by the beach.", "hotel"),
        ("Cozy B&B in the hills.", "hotel"),
        ("A law firm handling estate planning.", "generic"),
        ("An Italian dinner place in town.", "generic"),  # no whole keyword: "it", "inn" are not inside words
    ],
)
def test_business_type_by_keywords(description: str, kind: str) -> None:
    assert business_type(description) == kind


@pytest.mark.parametrize(
    "description",
    [
        "Pizza restaurant",
        "Dental clinic",
        "Hair salon",
        "Tech support helpdesk",
        "Retail store",
        "Hotel",
        "Accounting office",
        'Joe\'s "Best" Diner: open 24/7 #1 in town\nsecond line',
    ],
)
def test_every_template_loads(description: str) -> None:
    text = suggest_suite(description)
    suite = load_suite(text, "suggested.yaml")
    assert suite.business == description.strip()
    assert suite.number == PLACEHOLDER_NUMBER
    assert len(suite.scenarios) >= 3
    for scenario in suite.scenarios:
        assert scenario.expect, scenario.name
        assert scenario.expect[0].kind == "final_state"  # the default applies


def test_deterministic_and_uses_the_given_number() -> None:
    assert suggest_suite("Pizza place") == suggest_suite("Pizza place")
    suite = load_suite(suggest_suite("Pizza place", number="+442071234567"), "s.yaml")
    assert suite.number == "+442071234567"


def test_rejects_empty_description_and_bad_number() -> None:
    with pytest.raises(InvalidInput, match=r"Provide a business description first\."):
        suggest_suite("   ")
    with pytest.raises(InvalidInput, match=r"E\.164"):
        suggest_suite("Pizza place", number="555")


async def test_llm_adds_valid_business_specific_scenarios(fake_openai: Any) -> None:
    from callcheck.domain.suggest import suggest_suite_with_llm
    from callcheck.providers.llm import OpenAICompatibleJudge

    fake_openai.answer(
        '```json\n{"scenarios": [{"name": "Gluten Free", "goal": "ask whether the crust can be gluten-free."},'
        ' {"name": "book-a-table", "goal": "duplicate of a template name"},'
        ' {"name": "", "goal": "no name"}, {"name": "late-night", "goal": "ask until when they deliver"}]}\n```'
    )
    llm = OpenAICompatibleJudge(fake_openai.url, "test-model")
    text, note = await suggest_suite_with_llm("We are Pizza Palace, a pizza restaurant.", "+15550100001", llm)
    suite = load_suite(text, "s.yaml")
    names = [s.name for s in suite.scenarios]
    assert "gluten-free" in names and "late-night" in names
    assert suite.scenario("gluten-free").goal == "ask whether the crust can be gluten-free"
    assert note == "added 2 scenarios proposed by the LLM: gluten-free, late-night"
    _, _, body = fake_openai.requests[0]
    assert body["model"] == "test-model" and "Pizza Palace" in body["messages"][1]["content"]


async def test_llm_failure_falls_back_to_the_template(fake_openai: Any) -> None:
    from callcheck.domain.suggest import suggest_suite, suggest_suite_with_llm
    from callcheck.providers.llm import OpenAICompatibleJudge

    fake_openai.status = 500
    fake_openai.answer("{}")
    llm = OpenAICompatibleJudge(fake_openai.url, "m")
    text, note = await suggest_suite_with_llm("A dental clinic.", None, llm)
    assert text == suggest_suite("A dental clinic.")
    assert note is not None and "HTTP 500" in note
    fake_openai.status = 200
    fake_openai.answer("no json here")
    text, note = await suggest_suite_with_llm("A dental clinic.", None, llm)
    assert text == suggest_suite("A dental clinic.") and note and "no usable scenario" in note
    assert await suggest_suite_with_llm("A dental clinic.", None, None) == (suggest_suite("A dental clinic."), None)

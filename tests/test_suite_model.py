"""The suite file: loading YAML and JSON, every problem by path and line, planned calls, personas and overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcheck.domain.assertions import (
    FinalStateExpectation,
    MaxDurationExpectation,
    OutcomeExpectation,
    TranscriptExpectation,
)
from callcheck.domain.lifecycle import CallState
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.domain.suite import (
    SuiteError,
    load_suite,
    overrides_for,
    suite_from_data,
)
from callcheck.errors import InvalidInput

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "pizza.yaml"

ISSUE_EXAMPLE = """\
business: We are Pizza Palace, a pizza restaurant that takes orders and handles delivery.
number: "+15551234567"
defaults:
  expect:
    - final_state: completed
scenarios:
  - name: order-delivery
    goal: order a large pepperoni pizza for delivery to 123 Main St
    persona: {name: Maya, tone: friendly and brief, language: en}
    repeat: 3
    expect:
      - outcome: success
      - reached_human: false
      - transcript_contains: {speaker: business, text: confirm}
      - max_duration_s: 180
  - name: every-assertion-form     # the syntax of each assertion
    goal: order a pizza for pickup
    expect:
      - final_state: completed
      - transcript_not_contains: {speaker: business, text: sold out}
      - transcript_matches: {speaker: business, text: "order number \\\\d{4}"}
      - max_turns: 20
      - max_first_response_s: 5
      - keypad_sent: "2"
      - data_collected: {key: confirmation_number, value: "4821"}
      - criterion: {id: goal_achieved, result: success}
      - judge: "The business confirmed the pickup time before ending the call."
"""

ALL_ALLOWED = {"agent.prompt.prompt", "agent.first_message", "agent.language", "tts.voice_id", "tts.speed"}


def problems_of(text: str, source: str = "suite.yaml") -> list[str]:
    with pytest.raises(SuiteError) as caught:
        load_suite(text, source)
    assert isinstance(caught.value, InvalidInput)
    return [str(p) for p in caught.value.problems]


def test_issue_example_loads_with_every_assertion_kind() -> None:
    suite = load_suite(ISSUE_EXAMPLE, "pizza.yaml")
    assert suite.name == "pizza"
    assert [s.name for s in suite.scenarios] == ["order-delivery", "every-assertion-form"]
    kinds = [e.kind for e in suite.scenario("every-assertion-form").expect]
    assert kinds == [
        "final_state",
        "transcript_not_contains",
        "transcript_matches",
        "max_turns",
        "max_first_response_s",
        "keypad_sent",
        "data_collected",
        "criterion",
        "judge",
    ]
    matches = suite.scenario("every-assertion-form").expect[2]
    assert isinstance(matches, TranscriptExpectation)
    assert matches.text == r"order number \d{4}"
    assert matches.speaker == "business"


def test_documented_example_file_loads() -> None:
    suite = load_suite(EXAMPLE.read_text(), str(EXAMPLE))
    assert suite.name == "pizza-palace"
    assert len(suite.planned_calls()) == 3 + 5 + 1


def test_defaults_apply_and_a_stated_kind_replaces_the_default() -> None:
    text = """\
business: Shop
number: "+15551234567"
defaults:
  expect:
    - final_state: completed
    - max_duration_s: 100
scenarios:
  - name: a
    goal: buy
    expect:
      - max_duration_s: 30
  - name: b
    goal: buy
"""
    suite = load_suite(text, "s.yaml")
    a, b = suite.scenario("a").expect, suite.scenario("b").expect
    assert a == [FinalStateExpectation(state=CallState.COMPLETED), MaxDurationExpectation(seconds=30)]
    assert b == [FinalStateExpectation(state=CallState.COMPLETED), MaxDurationExpectation(seconds=100)]


def test_planned_calls_name_repeats_and_carry_everything() -> None:
    suite = load_suite(ISSUE_EXAMPLE, "pizza.yaml")
    calls = suite.planned_calls()
    assert [c.display_name for c in calls] == [
        "order-delivery",
        "order-delivery#2",
        "order-delivery#3",
        "every-assertion-form",
    ]
    assert [c.repeat for c in calls] == [1, 2, 3, 1]
    first = calls[0]
    assert first.number == "+15551234567"
    assert first.goal == "order a large pepperoni pizza for delivery to 123 Main St"
    assert first.persona is not None and first.persona.name == "Maya"
    assert first.expectations[0] == FinalStateExpectation(state=CallState.COMPLETED)
    assert first.expectations[1] == OutcomeExpectation(result="success")
    assert first.required_pass_rate == 1.0
    assert [c.display_name for c in suite.planned_calls(only=["every-assertion-form"])] == ["every-assertion-form"]


def test_only_with_an_unknown_name_is_invalid_input() -> None:
    suite = load_suite(ISSUE_EXAMPLE, "pizza.yaml")
    with pytest.raises(InvalidInput, match="did you mean 'order-delivery'"):
        suite.planned_calls(only=["order-delivry"])


def test_scenario_number_overrides_the_suite_number() -> None:
    text = """\
business: Shop
number: "+15551234567"
defaults: {expect: [{final_state: completed}]}
scenarios:
  - {name: a, goal: buy, number: "+442071234567"}
  - {name: b, goal: buy}
"""
    calls = load_suite(text, "s.yaml").planned_calls()
    assert [c.number for c in calls] == ["+442071234567", "+15551234567"]


def test_json_suite_loads_like_yaml() -> None:
    data = {
        "business": "Shop",
        "number": "+15551234567",
        "scenarios": [{"name": "a", "goal": "buy", "repeat": 2, "expect": [{"outcome": "success"}]}],
    }
    suite = load_suite(json.dumps(data, indent=2), "suite.json")
    assert [c.display_name for c in suite.planned_calls()] == ["a", "a#2"]
    assert suite_from_data(data, "api").scenarios == suite.scenarios


def test_json_syntax_error_is_reported_with_its_line() -> None:
    problems = problems_of('{\n  "business": "Shop",\n  "number": ,\n}', "suite.json")
    assert len(problems) == 1
    assert problems[0].startswith("(suite) (line 3): invalid JSON")


def test_yaml_syntax_error_is_reported_with_its_line() -> None:
    problems = problems_of("business: Shop\nscenarios:\n  - name: [a,\n")
    assert len(problems) == 1
    assert "invalid YAML" in problems[0]
    assert "(line " in problems[0]


def test_duplicate_key_is_reported() -> None:
    problems = problems_of('business: a\nbusiness: b\nnumber: "+15551234567"\n')
    assert "line 2" in problems[0] and "duplicate key" in problems[0]


def test_every_problem_is_listed_with_path_and_line() -> None:
    text = """\
business: Shop
number: 15551234567
defaults:
  expect:
    - final_stat: completed
scenarios:
  - name: a
    goal: buy
    repat: 2
    expect:
      - outcome: sucess
      - transcript_contains: {speakr: business}
  - name: a
    goal: ""
    repeat: 0
    required_pass_rate: 1.5
    persona: {speed: 3, language: English}
    expect:
      - outcom: success
      - {max_turns: 5, keypad_sent: "1"}
      - transcript_matches: "order ("
      - keypad_sent: 2
      - max_turns: true
      - data_collected: {value: x}
      - criterion: {id: goal_achieved, result: yes}
      - reached_human: "no"
      - judge: ""
  - name: "x#2"
    goal: buy
    number: "+1555"
"""
    problems = problems_of(text)
    expected = [
        "number (line 2): Phone number must be in E.164 format",
        "defaults.expect[0] (line 5): unknown assertion 'final_stat' (did you mean 'final_state'?)",
        "scenarios[0].repat (line 9): unknown key 'repat' (did you mean 'repeat'?)",
        "scenarios[0].expect[0].outcome (line 11): outcome must be one of success, failure, unknown, "
        'not the text "sucess"',
        "scenarios[0].expect[1].transcript_contains.speakr (line 12): unknown key 'speakr' (did you mean 'speaker'?)",
        "scenarios[0].expect[1].transcript_contains (line 12): 'text' is required",
        "scenarios[1].name (line 13): 'a' is already the name of scenarios[0]",
        "scenarios[1].goal (line 14): must be a non-empty text",
        "scenarios[1].repeat (line 15): must be a whole number from 1 to 100",
        "scenarios[1].required_pass_rate (line 16): must be a number above 0 and at most 1",
        "scenarios[1].persona.language (line 17): must be a language code",
        "scenarios[1].persona.speed (line 17): must be a number from 0.7 to 1.2",
        "scenarios[1].expect[0] (line 19): unknown assertion 'outcom' (did you mean 'outcome'?)",
        "scenarios[1].expect[1] (line 20): each assertion must be a one-key mapping",
        "scenarios[1].expect[2].transcript_matches (line 21): invalid regular expression",
        "scenarios[1].expect[3].keypad_sent (line 22): must be quoted keypad digits",
        # Values are shown as written in YAML (true, "no"), never as Python's True or 'no'.
        "scenarios[1].expect[4].max_turns (line 23): must be a whole number of turns of at least 1, not true",
        "scenarios[1].expect[5].data_collected (line 24): 'key' is required",
        "scenarios[1].expect[6].criterion.result (line 25): result must be one of success, failure, unknown",
        'scenarios[1].expect[7].reached_human (line 26): must be true or false, not the text "no"',
        "scenarios[1].expect[8].judge (line 27): must be a non-empty text",
        "scenarios[2].name (line 28): must not contain '#'",
        "scenarios[2].number (line 30): Phone number must be in E.164 format",
        # defaults.expect held only a broken assertion, so this scenario has none left.
        "scenarios[2] (line 28): no assertions",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), f"missing: {want}\n" + "\n".join(problems)
    assert len(problems) == len(expected), "\n".join(problems)


def test_unquoted_number_says_to_quote_it() -> None:
    problems = problems_of("business: Shop\nnumber: 15551234567\nscenarios: [{name: a, goal: b}]\n")
    assert any("quote it" in p for p in problems)


def test_missing_required_parts() -> None:
    problems = problems_of("defaults: {expect: [{outcome: success}]}\nnumbr: '+15551234567'\n")
    joined = "\n".join(problems)
    assert "business (line 1): is required" in joined
    assert "numbr (line 2): unknown key 'numbr' (did you mean 'number'?)" in joined
    assert "scenarios (line 1): is required" in joined


def test_a_scenario_without_number_or_assertions_is_rejected() -> None:
    problems = problems_of("business: Shop\nscenarios:\n  - name: a\n    goal: buy\n")
    assert "scenarios[0].number (line 3): no number" in problems[0]
    assert "scenarios[0] (line 3): no assertions" in problems[1]


def test_empty_and_non_mapping_suites() -> None:
    assert problems_of("") == ["(suite): the suite is empty"]
    assert "must be a mapping" in problems_of("- a\n- b\n")[0]
    assert "must be a non-empty list" in problems_of("business: a\nnumber: '+15551234567'\nscenarios: []\n")[0]


def test_suite_error_message_lists_every_problem() -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite("business: ''\nscenarios: 3\n", "bad.yaml")
    message = caught.value.message
    assert message.startswith("bad.yaml: 2 problems:")
    assert "business (line 1)" in message and "scenarios (line 2)" in message


PERSONA_SUITE = """\
business: We are Pizza Palace.
number: "+15551234567"
defaults:
  persona: {tone: friendly, voice_id: v_default}
  expect: [{final_state: completed}]
scenarios:
  - name: es
    goal: order a pizza.
    persona: {name: Lucía, language: es, speed: 1.1}
  - name: plain
    goal: ask the opening hours
  - name: opening
    goal: pedir una pizza
    first_message: "Hola, quisiera pedir una pizza."
"""


def test_persona_builds_on_the_seed_prompt_and_first_message() -> None:
    call = load_suite(PERSONA_SUITE, "p.yaml").planned_calls()[0]
    caller = call.caller()
    seed = caller_prompt("We are Pizza Palace.", "order a pizza.")
    assert caller.prompt.startswith(seed)
    persona_part = caller.prompt[len(seed) :]
    assert "Your name is Lucía" in persona_part
    assert "friendly" in persona_part  # from defaults.persona, merged field by field
    assert "Speak Spanish (es)" in persona_part
    assert caller.first_message == first_message("order a pizza.")
    assert (caller.language, caller.voice_id, caller.speed) == ("es", "v_default", 1.1)


def test_scenario_first_message_replaces_the_seed_opening() -> None:
    call = load_suite(PERSONA_SUITE, "p.yaml").planned_calls()[2]
    assert call.caller().first_message == "Hola, quisiera pedir una pizza."


def test_overrides_contain_only_allowed_fields_and_report_the_dropped() -> None:
    call = load_suite(PERSONA_SUITE, "p.yaml").planned_calls()[0]
    caller = call.caller()
    full = overrides_for(call, ALL_ALLOWED)
    assert full.config == {
        "agent": {"prompt": {"prompt": caller.prompt}, "first_message": caller.first_message, "language": "es"},
        "tts": {"voice_id": "v_default", "speed": 1.1},
    }
    assert full.dropped == []
    config, dropped = overrides_for(call, {"agent.prompt.prompt", "agent.first_message", "agent.language"})
    assert config == {
        "agent": {"prompt": {"prompt": caller.prompt}, "first_message": caller.first_message, "language": "es"}
    }
    assert dropped == ["tts.voice_id", "tts.speed"]


def test_overrides_never_send_unset_fields() -> None:
    text = "business: B\nnumber: '+15551234567'\nscenarios: [{name: a, goal: g, expect: [{outcome: success}]}]\n"
    call = load_suite(text, "s.yaml").planned_calls()[0]
    config, dropped = overrides_for(call, ALL_ALLOWED)
    assert config == {"agent": {"prompt": {"prompt": caller_prompt("B", "g")}, "first_message": first_message("g")}}
    assert dropped == []
    # Even the prompt is dropped (and reported) when the agent does not allow it; the runner decides what to do.
    assert overrides_for(call, set()).dropped == ["agent.prompt.prompt", "agent.first_message"]


def test_timeouts_and_pass_rate_defaults() -> None:
    text = """\
business: B
number: "+15551234567"
defaults: {timeouts: {call_s: 300}, required_pass_rate: 0.8, repeat: 2, expect: [{outcome: success}]}
scenarios:
  - {name: a, goal: g}
  - {name: b, goal: g, repeat: 1, required_pass_rate: 1, timeouts: {call_s: 60}}
"""
    calls = load_suite(text, "s.yaml").planned_calls()
    assert [(c.display_name, c.required_pass_rate, c.timeout_s) for c in calls] == [
        ("a", 0.8, 300.0),
        ("a#2", 0.8, 300.0),
        ("b", 1.0, 60.0),
    ]


DOCS = Path(__file__).parent.parent / "docs" / "suites.md"


def test_docs_example_loads_and_every_assertion_is_documented() -> None:
    from callcheck.domain.assertions import ASSERTION_KINDS

    text = DOCS.read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert load_suite(example, "docs.yaml").scenario("every-assertion-form").expect
    for kind in ASSERTION_KINDS:
        assert f"| `{kind}` |" in text, f"{kind} is not documented in docs/suites.md"


def test_json_suites_read_escaped_emoji_as_one_character_and_refuse_nul() -> None:
    data = {
        "business": "Pizza \U0001f355 and a literal \\ud83c",
        "number": "+15550100001",
        "scenarios": [{"name": "a", "goal": "g", "expect": [{"final_state": "completed"}]}],
    }
    suite = load_suite(json.dumps(data, indent=2), "s.json")  # written with ASCII escapes, as json.dumps does
    assert suite.business == "Pizza \U0001f355 and a literal \\ud83c"
    with pytest.raises(SuiteError) as refused:
        load_suite(json.dumps({**data, "business": "Pizza\u0000"}), "s.json")
    assert "the suite holds a NUL character" in str(refused.value)
    with pytest.raises(SuiteError) as broken:
        load_suite('business: "Pizza \\ud83c"\nnumber: "+15550100001"\nscenarios: []\n', "s.yaml")
    assert "unpaired surrogate" in str(broken.value)

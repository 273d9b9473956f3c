"""`callcheck suggest`: a starter suite for a business, from a deterministic template chosen by business type.

The type is detected from keywords in the description (restaurant, clinic, salon, tech support, retail, hotel,
else a generic line). The same description always gives the same suite, and every suite it gives loads with
`load_suite` (tests/test_suggest.py checks each template). With an LLM configured (the CALLCHECK_JUDGE_*
settings), `suggest_suite_with_llm` adds business-specific scenarios it proposes, each validated before it is kept.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from callcheck.domain.evidence import CRITERION_GOAL_ACHIEVED
from callcheck.domain.judge import ChatCompletions, json_in_text
from callcheck.domain.phone import require_e164
from callcheck.domain.prompts import MISSING_DESCRIPTION_ERROR
from callcheck.domain.suite import load_suite
from callcheck.errors import InvalidInput
from callcheck.text import counted

# A fictional number (555-01xx is reserved for fiction): the drafted suite loads, and cannot ring anyone real.
PLACEHOLDER_NUMBER = "+15555550100"


@dataclass(frozen=True)
class _Scenario:
    name: str
    goal: str
    persona: dict[str, str] = field(default_factory=dict)
    expect: tuple[str, ...] = ()  # assertion lines as YAML, e.g. "outcome: success"
    repeat: int = 1


@dataclass(frozen=True)
class _Template:
    kind: str
    label: str
    keywords: tuple[str, ...]
    scenarios: tuple[_Scenario, ...]


def _keywords(text: str) -> tuple[str, ...]:
    """Comma-separated keywords (a phrase may hold spaces) as a tuple."""
    return tuple(word.strip() for word in text.split(",") if word.strip())


_GOAL_MET = (
    "outcome: success",
    f"criterion: {{id: {CRITERION_GOAL_ACHIEVED}, result: success}}",
)

TEMPLATES: tuple[_Template, ...] = (
    _Template(
        kind="restaurant",
        label="restaurant / food ordering",
        keywords=_keywords(
            "restaurant, pizza, pizzeria, food, takeout, take-out, takeaway, delivery, cafe, café, "
            "diner, bistro, menu, bakery, sushi, burger, grill, kitchen, catering"
        ),
        scenarios=(
            _Scenario(
                name="order-for-delivery",
                goal="order a typical main dish for delivery to 123 Main St and get the total and delivery time",
                persona={"name": "Maya", "tone": "friendly and brief"},
                expect=(*_GOAL_MET, "reached_human: false", "max_duration_s: 240"),
                repeat=3,
            ),
            _Scenario(
                name="ask-opening-hours",
                goal="find out today's opening hours",
                expect=("outcome: success", "max_duration_s: 90"),
            ),
            _Scenario(
                name="book-a-table",
                goal="book a table for four this Friday at 7pm",
                persona={"name": "Daniel", "tone": "polite, a little hesitant"},
                expect=_GOAL_MET,
            ),
        ),
    ),
    _Template(
        kind="clinic",
        label="medical / dental clinic",
        keywords=_keywords(
            "clinic, dental, dentist, doctor, medical, physician, hospital, health, healthcare, "
            "pediatric, therapy, physiotherapy, optometrist, orthodontist, patient, patients, "
            "veterinary, vet"
        ),
        scenarios=(
            _Scenario(
                name="book-appointment",
                goal="book a routine check-up appointment next week as a new patient",
                persona={"name": "Sam", "tone": "calm and clear"},
                expect=(*_GOAL_MET, "max_duration_s: 300"),
                repeat=3,
            ),
            _Scenario(
                name="reschedule-appointment",
                goal="move an existing appointment on Tuesday morning to Thursday afternoon",
                expect=_GOAL_MET,
            ),
            _Scenario(
                name="ask-insurance",
                goal="ask whether the clinic accepts Blue Cross insurance",
                expect=("outcome: success", "max_duration_s: 120"),
            ),
        ),
    ),
    _Template(
        kind="salon",
        label="salon / booking",
        keywords=_keywords(
            "salon, barber, barbershop, spa, hair, haircut, nail, nails, beauty, massage, booking, "
            "bookings, stylist, manicure, pedicure, studio, fitness, gym, yoga"
        ),
        scenarios=(
            _Scenario(
                name="book-service",
                goal="book a haircut for Saturday morning",
                persona={"name": "Priya", "tone": "cheerful and quick"},
                expect=(*_GOAL_MET, "reached_human: false", "max_duration_s: 180"),
                repeat=3,
            ),
            _Scenario(
                name="cancel-booking",
                goal="cancel a booking made for tomorrow at 3pm",
                expect=_GOAL_MET,
            ),
            _Scenario(
                name="ask-prices",
                goal="ask the price of a manicure and whether walk-ins are accepted",
                expect=("outcome: success",),
            ),
        ),
    ),
    _Template(
        kind="support",
        label="tech support / helpdesk",
        keywords=_keywords(
            "support, helpdesk, help desk, technical, tech, it, internet, isp, broadband, "
            "software, router, password, outage, troubleshooting, saas, customer service"
        ),
        scenarios=(
            _Scenario(
                name="report-outage",
                goal="report that the internet connection has been down since this morning and get a ticket number",
                persona={"name": "Alex", "tone": "frustrated but polite"},
                expect=(*_GOAL_MET, "max_duration_s: 300"),
                repeat=3,
            ),
            _Scenario(
                name="reset-password",
                goal="get help resetting the account password",
                expect=(*_GOAL_MET, "reached_human: false"),
            ),
            _Scenario(
                name="reach-an-agent",
                goal="speak to a human support agent about a billing error",
                expect=("reached_human: true",),
            ),
        ),
    ),
    _Template(
        kind="retail",
        label="retail / store",
        keywords=_keywords(
            "store, shop, retail, retailer, boutique, outlet, stock, returns, electronics, "
            "hardware, pharmacy, grocery, supermarket, bookstore, furniture, clothing, products"
        ),
        scenarios=(
            _Scenario(
                name="check-stock",
                goal="check whether a specific item is in stock today and its price",
                persona={"name": "Jordan", "tone": "direct"},
                expect=(*_GOAL_MET, "max_duration_s: 180"),
                repeat=3,
            ),
            _Scenario(
                name="return-policy",
                goal="ask how to return an item bought last week without a receipt",
                expect=("outcome: success",),
            ),
            _Scenario(
                name="opening-hours",
                goal="find out the store's opening hours on Sunday",
                expect=("outcome: success", "max_duration_s: 90"),
            ),
        ),
    ),
    _Template(
        kind="hotel",
        label="hotel",
        keywords=_keywords(
            "hotel, inn, motel, resort, hostel, lodge, lodging, bed and breakfast, b&b, rooms, "
            "suites, guesthouse, accommodation"
        ),
        scenarios=(
            _Scenario(
                name="book-room",
                goal="book a double room for two nights starting next Friday and get a confirmation number",
                persona={"name": "Elena", "tone": "friendly and precise"},
                expect=(*_GOAL_MET, "max_duration_s: 300"),
                repeat=3,
            ),
            _Scenario(
                name="ask-late-checkout",
                goal="ask whether late checkout is possible and what it costs",
                expect=("outcome: success",),
            ),
            _Scenario(
                name="cancel-reservation",
                goal="cancel an existing reservation under the name Smith",
                expect=_GOAL_MET,
            ),
        ),
    ),
)

GENERIC = _Template(
    kind="generic",
    label="generic business",
    keywords=(),
    scenarios=(
        _Scenario(
            name="typical-task",
            goal="check availability and complete a typical customer task",
            persona={"name": "Chris", "tone": "friendly and brief"},
            expect=(*_GOAL_MET, "reached_human: false", "max_duration_s: 300"),
            repeat=3,
        ),
        _Scenario(
            name="ask-opening-hours",
            goal="find out the opening hours",
            expect=("outcome: success", "max_duration_s: 120"),
        ),
        _Scenario(
            name="reach-a-person",
            goal="speak to a person about a question the automated line cannot answer",
            expect=("reached_human: true",),
        ),
    ),
)


def _matches(text: str, keyword: str) -> bool:
    # Whole words only: "it" must not match "italian", nor "inn" "dinner".
    return re.search(rf"(?<![\w&]){re.escape(keyword)}(?![\w&])", text) is not None


def business_type(description: str) -> str:
    """The template kind for a description: the one whose keywords it mentions most, else `generic`."""
    text = description.lower()
    best, best_hits = GENERIC, 0
    # Strictly more hits to win: ties keep the earlier template, so the choice is deterministic.
    for template in TEMPLATES:
        hits = sum(1 for keyword in template.keywords if _matches(text, keyword))
        if hits > best_hits:
            best, best_hits = template, hits
    return best.kind


def _template(kind: str) -> _Template:
    return next((t for t in TEMPLATES if t.kind == kind), GENERIC)


def _quote(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, so this quotes anything safely.
    return json.dumps(text, ensure_ascii=False)


def suggest_suite(description: str, number: str | None = None) -> str:
    """YAML text of a starter suite for the business described (it loads with `load_suite`)."""
    description = description.strip() if isinstance(description, str) else ""
    if not description:
        raise InvalidInput(MISSING_DESCRIPTION_ERROR)
    line_number = require_e164(number) if number else PLACEHOLDER_NUMBER
    template = _template(business_type(description))
    lines = [
        f"# Starter suite drafted by `callcheck suggest` for a {template.label} line.",
        "# Review each goal and assertion (docs/suites.md), then try it: callcheck run suite.yaml --dry-run",
        f"business: {_quote(description)}",
        f"number: {_quote(line_number)}"
        + ("" if number else "  # a fictional placeholder: put the number to test here (E.164)"),
        "defaults:",
        "  expect:",
        "    - final_state: completed",
        "    - max_first_response_s: 10",
        "scenarios:",
    ]
    for scenario in template.scenarios:
        lines.append(f"  - name: {scenario.name}")
        lines.append(f"    goal: {_quote(scenario.goal)}")
        if scenario.persona:
            fields = ", ".join(f"{key}: {_quote(value)}" for key, value in scenario.persona.items())
            lines.append(f"    persona: {{{fields}}}")
        if scenario.repeat > 1:
            lines.append(f"    repeat: {scenario.repeat}")
        if scenario.expect:
            lines.append("    expect:")
            lines += [f"      - {assertion}" for assertion in scenario.expect]
    return "\n".join(lines) + "\n"


LLM_SYSTEM_PROMPT = (
    "You design phone-line test scenarios. A caller phones a business and tries to complete one task. "
    'Answer with JSON only: {"scenarios": [{"name": "kebab-case-name", "goal": "what the caller must get '
    'done, as an infinitive phrase without a trailing period"}]}. Give up to 5 scenarios specific to this business '
    "that a real customer would try, different from the ones listed."
)
MAX_LLM_SCENARIOS = 5


def suggest_request(model: str, description: str) -> dict[str, Any]:
    """The chat-completions request asking `model` for scenarios beyond the template's, for this business."""
    existing = [s.name for s in _template(business_type(description)).scenarios]
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": LLM_SYSTEM_PROMPT},
            {"role": "user", "content": f"Business: {description.strip()}\nAlready covered: {', '.join(existing)}"},
        ],
        "temperature": 0,
    }


def suite_from_reply(description: str, base: str, payload: Any) -> tuple[str, str]:
    """The template suite `base` with the valid scenarios the LLM's reply proposes added, and a note for the user."""
    existing = [s.name for s in _template(business_type(description)).scenarios]
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return base, "the LLM's answer had no content; this is the template suite only"
    proposed = json_in_text(content) if isinstance(content, str) else None
    items = proposed.get("scenarios") if isinstance(proposed, dict) else None
    text = base
    added: list[str] = []
    for item in items if isinstance(items, list) else []:
        if len(added) >= MAX_LLM_SCENARIOS or not isinstance(item, dict):
            continue
        name = re.sub(r"[^a-z0-9-]+", "-", str(item.get("name", "")).strip().lower()).strip("-")[:40]
        goal = " ".join(str(item.get("goal", "")).split()).rstrip(".")
        if not name or not goal or name in existing or name in added:
            continue
        candidate = text + f"  - name: {name}\n    goal: {_quote(goal)}\n"
        try:
            load_suite(candidate, "suggested.yaml")
        except InvalidInput:
            continue  # a proposal that does not make a valid scenario is left out, not repaired
        text = candidate
        added.append(name)
    if not added:
        return base, "the LLM proposed no usable scenario; this is the template suite only"
    return text, f"added {counted(len(added), 'scenario')} proposed by the LLM: {', '.join(added)}"


async def suggest_suite_with_llm(
    description: str, number: str | None, llm: ChatCompletions | None
) -> tuple[str, str | None]:
    """The starter suite, with business-specific scenarios an LLM proposed added when one is configured.

    Returns (YAML text, a note for the user or None). The template alone is returned, with a note saying why,
    whenever the model cannot be reached or proposes nothing usable: a suggestion never fails for its sake.
    """
    base = suggest_suite(description, number)
    if llm is None:
        return base, None
    payload, problem = await llm.complete(suggest_request(llm.model, description))
    if problem is not None:
        return base, f"the LLM {problem}; this is the template suite only"
    return suite_from_reply(description, base, payload)

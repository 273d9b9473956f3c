"""`suggest_suite`: a deterministic starter suite by business type that always loads."""

from __future__ import annotations

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

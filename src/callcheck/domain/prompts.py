"""What the caller is told: the seed's caller prompt, first message and default scenario, to the letter."""

from __future__ import annotations

DEFAULT_SCENARIO = "check availability, complete a typical customer task, and avoid speaking to a human if possible"

MISSING_DESCRIPTION_ERROR = "Provide a business description first."

CALLER_PROMPT_TEMPLATE = (
    "You are simulating a real customer contacting the business below. "
    "The other side is the company, an operator, or an IVR. "
    "Stay in character as the caller/customer, try to complete the task, "
    "and avoid escalating to a human unless the flow requires it.\n"
    "\n"
    "Business description: {description}\n"
    "\n"
    "Caller goal: {scenario}\n"
    "\n"
    "Speak naturally, ask one thing at a time, and keep each response concise."
)


def clean_text(value: object) -> str:
    """A request text field: stripped when it is a string, empty otherwise."""
    return value.strip() if isinstance(value, str) else ""


def normalize_scenario(*candidates: object) -> str:
    """The first non-blank candidate, stripped; the seed's default scenario when all are blank."""
    for candidate in candidates:
        text = clean_text(candidate)
        if text:
            return text
    return DEFAULT_SCENARIO


def caller_prompt(description: str, scenario: str) -> str:
    """The seed's caller prompt with the business description and the caller's goal inserted."""
    return CALLER_PROMPT_TEMPLATE.format(description=description.strip(), scenario=scenario.strip())


def first_message(scenario: str) -> str:
    """`Hi, I'm calling because I'd like to {scenario}.` with the scenario's own trailing period removed."""
    return f"Hi, I'm calling because I'd like to {scenario.strip().rstrip('.').rstrip()}."

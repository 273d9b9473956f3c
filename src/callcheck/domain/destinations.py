"""Who may be called: destination rules by country, the way Twilio's geographic permissions work (pure, no I/O).

    DialRules.parse(countries, numbers)   CALLCHECK_ALLOWED_COUNTRIES / CALLCHECK_ALLOWED_NUMBERS, checked
    classify(number) -> Destination       its calling code and kind (ordinary, premium, shared cost, network...)
    refusal(number, rules, home) -> Refusal | None
                                          why the number may not be called, or None when it may

By default only the calling code of the agent's own phone number (`home`) is allowed. Whatever the countries
allowed, three kinds of destination stay refused unless CALLCHECK_ALLOWED_NUMBERS names the number in full:

- premium-rate and shared-cost numbers, as Google's libphonenumber classifies them for every country it knows
  (PREMIUM_RATE, SHARED_COST: the caller pays a surcharge that goes to the number's holder, the heart of toll
  fraud), plus the North American pay-per-call ranges libphonenumber does not flag: area codes 900 and 976 and the
  976 exchange of any area code (the historical "976 numbers", still billed at premium rates by some carriers);
- international networks: the ITU's non-geographic calling codes (+800 international freephone, +808 shared cost,
  +870 Inmarsat, +878 personal numbering, +881 satellite, +882/+883 international networks, +888 OCHA, +979
  international premium rate): no country's caller permissions cover them and they are billed as premium;
- calling codes that belong to no country (unassigned or reserved, such as +999): nothing legitimate answers.

The seed's E.164 check comes first and is not repeated here; a number libphonenumber finds invalid (the sandbox's
+1555... numbers) is still judged by its calling code, so a new range is not refused for being new.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

ALL_COUNTRIES = "*"
NO_COUNTRY = "none"
SETTING_COUNTRIES = "CALLCHECK_ALLOWED_COUNTRIES"
SETTING_NUMBERS = "CALLCHECK_ALLOWED_NUMBERS"

# North American pay-per-call: NPA 900 and 976, and the 976 exchange (NXX) of any area code.
NANP_PREMIUM_AREA_CODES = ("900", "976")
NANP_PREMIUM_EXCHANGES = ("976",)


class Kind(enum.Enum):
    """What a destination is, as far as what calling it costs."""

    ORDINARY = "ordinary"  # a geographic, mobile, toll-free or otherwise ordinary number of a country
    PREMIUM = "premium-rate"  # the caller pays a surcharge to the number's holder
    SHARED_COST = "shared-cost"  # the caller pays part of the call above the ordinary rate
    NETWORK = "international network"  # an ITU non-geographic calling code (+88x, +979, +800...)
    UNASSIGNED = "unassigned calling code"  # a calling code that belongs to no country


class Rule(enum.Enum):
    """The rule a refusal names (also the `rule` field of the 403)."""

    COUNTRY = "country"  # the destination's calling code is not allowed
    HOME_UNKNOWN = "agent_country_unknown"  # the default rule cannot be applied: the agent's own number is unknown
    PREMIUM = "premium"  # premium-rate or shared-cost number
    NETWORK = "network"  # international network or unassigned calling code


@dataclass(frozen=True)
class Destination:
    """A number's calling code (None when it has none) and kind."""

    number: str
    calling_code: int | None
    kind: Kind


@dataclass(frozen=True)
class Refusal:
    """Why a number may not be called: the rule and a sentence for a person."""

    rule: Rule
    message: str


@dataclass(frozen=True)
class DialRules:
    """The destinations allowed: calling codes (None: the agent's own; empty: none but the numbers) and numbers."""

    countries: frozenset[int] | None = None
    every_country: bool = False
    numbers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, countries: str | None, numbers: str | None) -> DialRules:
        """The rules from the two settings' text; ValueError for anything malformed."""
        return cls(
            countries=_parse_countries(countries),
            every_country=(countries or "").strip() == ALL_COUNTRIES,
            numbers=_parse_numbers(numbers),
        )

    @property
    def needs_home(self) -> bool:
        """True when the default applies: the agent's own calling code must be known."""
        return self.countries is None and not self.every_country

    def named_in_full(self, number: str) -> bool:
        """True when CALLCHECK_ALLOWED_NUMBERS lists this very number."""
        return number in self.numbers

    def by_prefix(self, number: str) -> bool:
        """True when an entry of CALLCHECK_ALLOWED_NUMBERS is this number or a prefix of it."""
        return any(number.startswith(entry) for entry in self.numbers)


def _parse_countries(text: str | None) -> frozenset[int] | None:
    value = (text or "").strip()
    if not value:
        return None
    if value == ALL_COUNTRIES:
        return frozenset()
    if value.lower() == NO_COUNTRY:
        return frozenset()
    codes = set()
    for part in value.split(","):
        item = part.strip().removeprefix("+")
        if not (item.isascii() and item.isdigit() and 1 <= len(item) <= 3):
            raise ValueError(f"{part.strip()!r} is not a calling code (use e.g. `1,44`, `*` or `none`)")
        code = int(item)
        if code not in phonenumbers.COUNTRY_CODE_TO_REGION_CODE or _is_network_code(code):
            raise ValueError(f"+{code} is not the calling code of a country")
        codes.add(code)
    return frozenset(codes)


def _parse_numbers(text: str | None) -> tuple[str, ...]:
    entries = []
    for part in (text or "").split(","):
        item = part.strip().replace(" ", "")
        if not item:
            continue
        digits = item[1:]
        if not (item.startswith("+") and digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 15):
            raise ValueError(f"{part.strip()!r} is not an E.164 number or prefix (e.g. +1415555)")
        entries.append(item)
    return tuple(entries)


def _is_network_code(code: int) -> bool:
    return code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS


def calling_code(number: str) -> int | None:
    """The calling code an E.164 number starts with (codes are prefix-free), or None when it has none."""
    digits = number.removeprefix("+")
    for length in (1, 2, 3):
        if len(digits) >= length and int(digits[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:length])
    return None


def classify(number: str) -> Destination:
    """The calling code and kind of an E.164 number."""
    code = calling_code(number)
    if code is None:
        return Destination(number, None, Kind.UNASSIGNED)
    if _is_network_code(code):
        return Destination(number, code, Kind.NETWORK)
    national = number.removeprefix("+")[len(str(code)) :]
    if code == 1 and (national[:3] in NANP_PREMIUM_AREA_CODES or national[3:6] in NANP_PREMIUM_EXCHANGES):
        return Destination(number, code, Kind.PREMIUM)
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return Destination(number, code, Kind.ORDINARY)
    kind = {
        PhoneNumberType.PREMIUM_RATE: Kind.PREMIUM,
        PhoneNumberType.SHARED_COST: Kind.SHARED_COST,
    }.get(phonenumbers.number_type(parsed), Kind.ORDINARY)
    return Destination(number, code, kind)


def refusal(number: str, rules: DialRules, home: int | None) -> Refusal | None:
    """Why `number` may not be called under `rules` (`home`: the agent's own calling code), or None when it may."""
    if rules.named_in_full(number):
        return None
    destination = classify(number)
    if destination.kind in (Kind.NETWORK, Kind.UNASSIGNED):
        return Refusal(
            Rule.NETWORK,
            f"Calls to {number} are refused: it is on an {destination.kind.value}"
            + (f" (+{destination.calling_code})" if destination.calling_code else "")
            + f", not a country's number. Name it in {SETTING_NUMBERS} to allow it.",
        )
    if destination.kind in (Kind.PREMIUM, Kind.SHARED_COST):
        return Refusal(
            Rule.PREMIUM,
            f"Calls to {number} are refused: it is a {destination.kind.value} number. "
            f"Name it in full in {SETTING_NUMBERS} to allow it.",
        )
    if rules.by_prefix(number) or rules.every_country:
        return None
    if rules.countries is not None:
        if destination.calling_code in rules.countries:
            return None
        allowed = ", ".join(f"+{c}" for c in sorted(rules.countries)) or "none"
        return Refusal(
            Rule.COUNTRY,
            f"Calls to +{destination.calling_code} numbers are refused: {SETTING_COUNTRIES} allows {allowed}.",
        )
    if home is None:
        return Refusal(
            Rule.HOME_UNKNOWN,
            "Calls are allowed only to the country of the agent's own phone number, which could not be learned "
            f"from ElevenLabs: set {SETTING_COUNTRIES} (e.g. `1,44`) to say which countries may be called.",
        )
    if destination.calling_code == home:
        return None
    return Refusal(
        Rule.COUNTRY,
        f"Calls to +{destination.calling_code} numbers are refused: only the agent's own country (+{home}) is "
        f"allowed. Set {SETTING_COUNTRIES} (e.g. `{home},{destination.calling_code}`) to allow more.",
    )

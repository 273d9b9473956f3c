"""The suite file (YAML or JSON): a business's scenarios, the callers playing them, what each must achieve.

    load_suite(text, source_name) -> Suite          every problem at once, by path and line, or SuiteError
    suite_from_data(data, source_name) -> Suite     the same from already-parsed JSON (the API's body)
    Suite.planned_calls(only=None) -> [PlannedCall] one per scenario repeat: `name`, `name#2`, `name#3`...
    PlannedCall.caller() -> CallerConfig            prompt (on the seed's), first message, language, voice
    overrides_for(planned, allowed) -> Overrides    the conversation_config_override the agent allows

The format is documented in docs/suites.md; keep the two in step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent

from callcheck.domain.assertions import Expectation, did_you_mean, merge_expectations, not_value, parse_assertion
from callcheck.domain.phone import E164_ERROR, is_e164
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.domain.storable import unstorable
from callcheck.errors import InvalidInput

# Most YAML nodes (scalars, mappings, sequences) a suite may have: parsing is bounded before any value is built.
MAX_SUITE_NODES = 50_000
# Guards against a typo like `repeat: 1000` turning into a thousand real (paid) phone calls.
MAX_REPEAT = 100
# The range ElevenLabs accepts for tts.speed (contract §6.5 lists the field; its docs give 0.7-1.2).
SPEED_RANGE = (0.7, 1.2)
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

TOP_KEYS = ("name", "business", "number", "defaults", "scenarios")
DEFAULT_KEYS = ("persona", "expect", "timeouts", "repeat", "required_pass_rate")
SCENARIO_KEYS = (
    "name",
    "goal",
    "number",
    "persona",
    "repeat",
    "required_pass_rate",
    "expect",
    "timeouts",
    "first_message",
)
PERSONA_KEYS = ("name", "tone", "language", "voice_id", "speed")
TIMEOUT_KEYS = ("call_s",)

# Override field paths, as ElevenLabs names them under conversation_config_override (contract §2.3, §6.5).
OVERRIDE_PROMPT = "agent.prompt.prompt"
OVERRIDE_FIRST_MESSAGE = "agent.first_message"
OVERRIDE_LANGUAGE = "agent.language"
OVERRIDE_VOICE = "tts.voice_id"
OVERRIDE_SPEED = "tts.speed"

LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
    "hi": "Hindi",
    "ar": "Arabic",
}


# --- the model --------------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Persona(_Frozen):
    """Who the caller plays: a name, a tone, a language, and the ElevenLabs voice and speed."""

    name: str | None = None
    tone: str | None = None
    language: str | None = None
    voice_id: str | None = None
    speed: float | None = None

    def merged_over(self, base: Persona | None) -> Persona:
        """This persona with every field it leaves unset taken from `base`."""
        if base is None:
            return self
        return Persona(**{**base.model_dump(exclude_none=True), **self.model_dump(exclude_none=True)})

    @property
    def empty(self) -> bool:
        """True when no field is set."""
        return not self.model_dump(exclude_none=True)


class Timeouts(_Frozen):
    """How long callcheck waits on a call."""

    call_s: float | None = None  # following a call longer than this marks it timed_out (default: settings)


class Scenario(_Frozen):
    """One task a caller tries, with the defaults already applied."""

    name: str
    goal: str
    number: str
    persona: Persona | None = None
    repeat: int = 1
    required_pass_rate: float = 1.0
    expect: list[Expectation]
    timeouts: Timeouts = Field(default_factory=Timeouts)
    first_message: str | None = None


class CallerConfig(_Frozen):
    """How the caller is set up for one call: what ElevenLabs receives as per-call overrides."""

    prompt: str
    first_message: str
    language: str | None = None
    voice_id: str | None = None
    speed: float | None = None

    def override_fields(self) -> dict[str, Any]:
        """Each override field path with its value; unset persona fields are left out, never sent as null."""
        fields: dict[str, Any] = {
            OVERRIDE_PROMPT: self.prompt,
            OVERRIDE_FIRST_MESSAGE: self.first_message,
            OVERRIDE_LANGUAGE: self.language,
            OVERRIDE_VOICE: self.voice_id,
            OVERRIDE_SPEED: self.speed,
        }
        # ElevenLabs' docs: omit fields you do not override rather than sending null (contract §2.3).
        return {path: value for path, value in fields.items() if value is not None}


class PlannedCall(_Frozen):
    """One call a suite run will place: one repeat of one scenario."""

    suite: str
    scenario: str
    repeat: int  # 1..N
    display_name: str  # `name` for the first repeat, `name#2`, `name#3`... after
    business: str
    number: str
    goal: str
    persona: Persona | None = None
    first_message: str | None = None
    expectations: list[Expectation]
    required_pass_rate: float = 1.0
    timeout_s: float | None = None

    def caller(self) -> CallerConfig:
        """The caller's configuration for this call."""
        return caller_config(self.business, self.goal, self.persona, self.first_message)


class Suite(_Frozen):
    """A validated suite."""

    name: str
    source: str
    business: str
    number: str | None = None
    scenarios: list[Scenario]

    def scenario(self, name: str) -> Scenario:
        """The scenario called `name` (KeyError when there is none)."""
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(name)

    def planned_calls(self, only: Sequence[str] | None = None) -> list[PlannedCall]:
        """Every call the suite places, scenario by scenario, repeat by repeat; `only` keeps those named."""
        if only:
            unknown = [name for name in only if name not in {s.name for s in self.scenarios}]
            if unknown:
                names = [s.name for s in self.scenarios]
                raise InvalidInput("; ".join(f"no scenario named '{n}'{did_you_mean(n, names)}" for n in unknown))
        calls = []
        for scenario in self.scenarios:
            if only and scenario.name not in only:
                continue
            for repeat in range(1, scenario.repeat + 1):
                calls.append(
                    PlannedCall(
                        suite=self.name,
                        scenario=scenario.name,
                        repeat=repeat,
                        display_name=display_name(scenario.name, repeat),
                        business=self.business,
                        number=scenario.number,
                        goal=scenario.goal,
                        persona=scenario.persona,
                        first_message=scenario.first_message,
                        expectations=scenario.expect,
                        required_pass_rate=scenario.required_pass_rate,
                        timeout_s=scenario.timeouts.call_s,
                    )
                )
        return calls


def display_name(scenario: str, repeat: int) -> str:
    """`name` for the first repeat, `name#2`, `name#3`... for the later ones."""
    return scenario if repeat == 1 else f"{scenario}#{repeat}"


# --- the caller ---------------------------------------------------------------------------------------------


def persona_lines(persona: Persona | None) -> list[str]:
    """The lines a persona adds to the caller's prompt."""
    if persona is None:
        return []
    lines = []
    if persona.name:
        lines.append(f"Your name is {persona.name}; give it if you are asked for a name.")
    if persona.tone:
        lines.append(f"Your tone and style: {persona.tone}.")
    if persona.language:
        language = LANGUAGE_NAMES.get(persona.language.split("-")[0].lower(), persona.language)
        lines.append(f"Speak {language} ({persona.language}) for the whole call.")
    return lines


def caller_config(business: str, goal: str, persona: Persona | None = None, opening: str | None = None) -> CallerConfig:
    """The caller for `goal` at `business`: the seed's prompt and first message, plus the persona's lines."""
    prompt = caller_prompt(business, goal)
    lines = persona_lines(persona)
    if lines:
        # Appended after the seed's text so its instructions stay exactly as the single-call path sends them.
        prompt += "\n\nYour persona:\n" + "\n".join(f"- {line}" for line in lines)
    return CallerConfig(
        prompt=prompt,
        first_message=opening.strip() if opening and opening.strip() else first_message(goal),
        language=persona.language if persona else None,
        voice_id=persona.voice_id if persona else None,
        speed=persona.speed if persona else None,
    )


class Overrides(NamedTuple):
    """The `conversation_config_override` to send, and the field paths left out as the agent forbids them."""

    config: dict[str, Any]
    dropped: list[str]


def overrides_for(planned_call: PlannedCall, allowed: set[str]) -> Overrides:
    """The per-call override with only the `allowed` field paths (e.g. "tts.voice_id"); others dropped."""
    config: dict[str, Any] = {}
    dropped: list[str] = []
    for path, value in planned_call.caller().override_fields().items():
        if path not in allowed:
            # ElevenLabs rejects the whole call when an override is not enabled on the agent (contract §2.3).
            dropped.append(path)
            continue
        node = config
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return Overrides(config=config, dropped=dropped)


# --- loading ------------------------------------------------------------------------------------------------


class SuiteProblem(BaseModel):
    """One thing wrong with a suite file: where (path and 1-based line, when known) and what."""

    path: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = self.path or "(suite)"
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


class SuiteError(InvalidInput):
    """The suite file is not valid; `problems` lists every problem found."""

    def __init__(self, source: str, problems: list[SuiteProblem]) -> None:
        count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  {p}" for p in problems))
        self.source = source
        self.problems = problems


def load_suite(text: str, source_name: str) -> Suite:
    """The suite in `text` (YAML or JSON), or SuiteError listing every problem by path and line."""
    _refuse_unbounded(text, source_name)
    looks_json = source_name.lower().endswith(".json") or text.lstrip().startswith(("{", "["))
    if looks_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise SuiteError(source_name, [SuiteProblem(path="", line=exc.lineno, message=message)]) from None
        # JSON is YAML: reading it again with the YAML loader gives line numbers. Should the YAML reader disagree
        # (it reads an escaped surrogate pair such as "\ud83c\udf55", an emoji, as two broken halves), the JSON
        # reading stands, without line numbers.
        try:
            with_lines = YAML(typ="rt").load(_join_surrogate_escapes(text))
        except YAMLError:
            with_lines = None
        if with_lines is not None and _plain(with_lines) == data:
            data = with_lines
        _refuse_unstorable(data, source_name)
        return suite_from_data(data, source_name)
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        message = "invalid YAML: " + "; ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise SuiteError(source_name, [SuiteProblem(path="", line=line, message=message)]) from None
    except YAMLError as exc:
        raise SuiteError(source_name, [SuiteProblem(path="", message=f"invalid YAML: {exc}")]) from None
    _refuse_unstorable(data, source_name)
    return suite_from_data(data, source_name)


def _refuse_unbounded(text: str, source_name: str) -> None:
    """SuiteError for YAML whose loading could take unbounded time or memory: an alias (`*name`: nested aliases
    expand exponentially, a kilobyte "billion laughs" suite fills gigabytes), or more than MAX_SUITE_NODES nodes.

    Read as a stream of parser events, which never expands an alias and stops at the first one or at the limit.
    """
    nodes = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                message = "YAML aliases (*name) are not accepted in a suite: write the value out in full"
                raise SuiteError(source_name, [SuiteProblem(path="", line=line, message=message)])
            if isinstance(event, ScalarEvent | MappingStartEvent | SequenceStartEvent):
                nodes += 1
                if nodes > MAX_SUITE_NODES:
                    message = f"the suite is too large (over {MAX_SUITE_NODES} YAML nodes)"
                    raise SuiteError(source_name, [SuiteProblem(path="", message=message)])
    except YAMLError:
        return  # malformed: loading it reports the problem with its line


# An escaped UTF-16 surrogate pair in JSON text (not itself escaped by a backslash before it).
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def _join_surrogate_escapes(text: str) -> str:
    """JSON text with each escaped surrogate pair ("\\ud83c\\udf55", as json.dumps writes an emoji) written as the
    character it stands for: the YAML reader, which gives line numbers, would read the halves apart."""

    def join(match: re.Match[str]) -> str:
        high, low = int(match.group(2), 16), int(match.group(3), 16)
        return match.group(1) + chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))

    return _SURROGATE_PAIR.sub(join, text)


def _refuse_unstorable(data: Any, source_name: str) -> None:
    """SuiteError when the suite holds text no database can keep (a NUL, a lone surrogate): refused before any
    call, rather than a run that fails half-way through storing its first call."""
    problem = unstorable(_plain(data))
    if problem:
        raise SuiteError(source_name, [SuiteProblem(path="", message=f"the suite {problem}")])


def suite_from_data(data: Any, source_name: str) -> Suite:
    """The suite from parsed data (lines are reported when `data` came from the YAML loader)."""
    reader = _Reader()
    suite = reader.suite(data, source_name)
    if reader.problems or suite is None:
        raise SuiteError(source_name, reader.problems)
    return suite


def _plain(value: Any) -> Any:
    """ruamel's scalar and container subclasses as plain Python values."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _key_line(mapping: Any, key: str) -> int | None:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return _line(mapping)


def _item_line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return _line(seq)


def _line(node: Any) -> int | None:
    try:
        return int(node.lc.line) + 1
    except (AttributeError, TypeError):
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Reader:
    """Walks parsed suite data, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[SuiteProblem] = []

    def problem(self, path: str, line: int | None, message: str) -> None:
        self.problems.append(SuiteProblem(path=path, line=line, message=message))

    def keys(self, node: dict[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in node:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                message = f"unknown key '{key}'{did_you_mean(str(key), allowed)}"
                self.problem(where, _key_line(node, key), message)

    def text(self, node: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        where = f"{path}.{key}" if path else key
        if key not in node:
            if required:
                self.problem(where, _line(node), "is required")
            return None
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(where, _key_line(node, key), f"must be a non-empty text{not_value(_plain(value))}")
            return None
        return str(value).strip()

    def number(self, node: dict[str, Any], path: str) -> str | None:
        if "number" not in node:
            return None
        value = node["number"]
        if not isinstance(value, str) or not is_e164(value.strip()):
            # A number written unquoted reads as an integer: say so, the fix is to quote it.
            shown = f" (got {_plain(value)!r}; quote it)" if not isinstance(value, str) else f" (got {value!r})"
            self.problem(f"{path}.number" if path else "number", _key_line(node, "number"), E164_ERROR + shown)
            return None
        return str(value).strip()

    def repeat(self, node: dict[str, Any], path: str) -> int | None:
        if "repeat" not in node:
            return None
        value = node["repeat"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
            message = f"must be a whole number from 1 to {MAX_REPEAT}{not_value(_plain(value))}"
            self.problem(f"{path}.repeat", _key_line(node, "repeat"), message)
            return None
        return int(value)

    def pass_rate(self, node: dict[str, Any], path: str) -> float | None:
        if "required_pass_rate" not in node:
            return None
        value = node["required_pass_rate"]
        if not _is_number(value) or not 0 < value <= 1:
            message = f"must be a number above 0 and at most 1 (0.8 for 80%){not_value(_plain(value))}"
            self.problem(f"{path}.required_pass_rate", _key_line(node, "required_pass_rate"), message)
            return None
        return float(value)

    def persona(self, node: dict[str, Any], path: str) -> Persona | None:
        if "persona" not in node:
            return None
        value, where = node["persona"], f"{path}.persona"
        if not isinstance(value, dict):
            self.problem(where, _key_line(node, "persona"), f"must be a mapping of {', '.join(PERSONA_KEYS)}")
            return None
        self.keys(value, PERSONA_KEYS, where)
        fields: dict[str, Any] = {}
        for key in ("name", "tone", "language", "voice_id"):
            text = self.text(value, key, where, required=False)
            if text is not None:
                fields[key] = text
        language = fields.get("language")
        if language is not None and not LANGUAGE_PATTERN.fullmatch(language):
            message = f"must be a language code such as en, es or pt-br, not {language!r}"
            self.problem(f"{where}.language", _key_line(value, "language"), message)
        if "speed" in value:
            speed = value["speed"]
            low, high = SPEED_RANGE
            if not _is_number(speed) or not low <= speed <= high:
                message = f"must be a number from {low} to {high}{not_value(_plain(speed))}"
                self.problem(f"{where}.speed", _key_line(value, "speed"), message)
            else:
                fields["speed"] = float(speed)
        return Persona(**fields)

    def timeouts(self, node: dict[str, Any], path: str) -> Timeouts | None:
        if "timeouts" not in node:
            return None
        value, where = node["timeouts"], f"{path}.timeouts"
        if not isinstance(value, dict):
            self.problem(where, _key_line(node, "timeouts"), "must be a mapping such as {call_s: 600}")
            return None
        self.keys(value, TIMEOUT_KEYS, where)
        call_s = value.get("call_s")
        if call_s is not None and (not _is_number(call_s) or call_s <= 0):
            message = f"must be a number of seconds above 0{not_value(_plain(call_s))}"
            self.problem(f"{where}.call_s", _key_line(value, "call_s"), message)
            return None
        return Timeouts(call_s=None if call_s is None else float(call_s))

    def expect(self, node: dict[str, Any], path: str) -> list[Expectation] | None:
        if "expect" not in node:
            return None
        items, where = node["expect"], f"{path}.expect"
        if not isinstance(items, list):
            self.problem(
                where,
                _key_line(node, "expect"),
                "must be a list of assertions, e.g. - final_state: completed",
            )
            return None
        expectations: list[Expectation] = []
        for index, item in enumerate(items):
            item_path, line = f"{where}[{index}]", _item_line(items, index)
            if not isinstance(item, dict) or len(item) != 1:
                message = "each assertion must be a one-key mapping such as `outcome: success`"
                if isinstance(item, dict) and len(item) > 1:
                    message += f", not {len(item)} keys ({', '.join(map(str, item))}); put each on its own `- ` line"
                elif isinstance(item, str):
                    message += f", not the text {item!r}"
                self.problem(item_path, line, message)
                continue
            kind, value = next(iter(item.items()))
            built, problems = parse_assertion(str(kind), _plain(value))
            for problem in problems:
                field_line = line
                if problem.field is not None and isinstance(value, dict) and problem.field in value:
                    field_line = _key_line(value, problem.field)
                field_path = f"{item_path}.{kind}" + (f".{problem.field}" if problem.field else "")
                self.problem(
                    item_path if problem.message.startswith("unknown assertion") else field_path,
                    field_line,
                    problem.message,
                )
            if built is not None:
                expectations.append(built)
        return expectations

    def suite(self, data: Any, source: str) -> Suite | None:
        if data is None:
            self.problem("", None, "the suite is empty")
            return None
        if not isinstance(data, dict):
            self.problem("", _line(data), "a suite must be a mapping with business, number and scenarios")
            return None
        self.keys(data, TOP_KEYS, "")
        business = self.text(data, "business", "")
        # Unnamed: a file is named after itself; a suite sent to the API or pasted on the page (no file, no suffix)
        # after the first words of its business.
        fallback = PurePath(source).stem if PurePath(source).suffix else _first_words(business or "")
        name = self.text(data, "name", "", required=False) or fallback or "suite"
        number = self.number(data, "")

        defaults: dict[str, Any] = {}
        default_persona: Persona | None = None
        default_expect: list[Expectation] = []
        default_timeouts = Timeouts()
        default_repeat, default_rate = 1, 1.0
        if "defaults" in data:
            defaults = data["defaults"]
            if not isinstance(defaults, dict):
                self.problem("defaults", _key_line(data, "defaults"), f"must be a mapping of {', '.join(DEFAULT_KEYS)}")
                defaults = {}
            self.keys(defaults, DEFAULT_KEYS, "defaults")
            default_persona = self.persona(defaults, "defaults")
            default_expect = self.expect(defaults, "defaults") or []
            default_timeouts = self.timeouts(defaults, "defaults") or default_timeouts
            default_repeat = self.repeat(defaults, "defaults") or default_repeat
            default_rate = self.pass_rate(defaults, "defaults") or default_rate

        scenarios: list[Scenario] = []
        items = data.get("scenarios")
        if "scenarios" not in data:
            self.problem("scenarios", _line(data), "is required: a list of scenarios, each with a name and a goal")
        elif not isinstance(items, list) or not items:
            self.problem("scenarios", _key_line(data, "scenarios"), "must be a non-empty list of scenarios")
        else:
            seen: dict[str, int] = {}
            for index, item in enumerate(items):
                scenario = self.scenario(
                    item,
                    f"scenarios[{index}]",
                    _item_line(items, index),
                    number=number,
                    number_given="number" in data,
                    defaults=(
                        default_persona,
                        default_expect,
                        default_timeouts,
                        default_repeat,
                        default_rate,
                    ),
                    seen=seen,
                )
                if scenario is not None:
                    scenarios.append(scenario)
        if self.problems or business is None:
            return None
        return Suite(name=name, source=source, business=business, number=number, scenarios=scenarios)

    def scenario(
        self,
        item: Any,
        path: str,
        line: int | None,
        *,
        number: str | None,
        number_given: bool,
        defaults: tuple[Persona | None, list[Expectation], Timeouts, int, float],
        seen: dict[str, int],
    ) -> Scenario | None:
        default_persona, default_expect, default_timeouts, default_repeat, default_rate = defaults
        if not isinstance(item, dict):
            self.problem(path, line, "a scenario must be a mapping with at least a name and a goal")
            return None
        self.keys(item, SCENARIO_KEYS, path)
        name = self.scenario_name(item, path, seen)
        goal = self.text(item, "goal", path)
        own_number = self.number(item, path)
        if not number_given and "number" not in item:
            self.problem(f"{path}.number", line, "no number: set `number` here or at the top of the suite")
        persona = self.persona(item, path)
        repeat = self.repeat(item, path)
        rate = self.pass_rate(item, path)
        own_expect = self.expect(item, path)
        timeouts = self.timeouts(item, path)
        opening = self.text(item, "first_message", path, required=False)
        expect = merge_expectations(default_expect, own_expect or [])
        if not expect and item.get("expect") in (None, []):
            self.problem(path, line, "no assertions: add `expect` here or `defaults.expect`, so the run can fail")
        if name is None or goal is None or (own_number or number) is None:
            return None
        merged_persona = (persona or Persona()).merged_over(default_persona)
        return Scenario(
            name=name,
            goal=goal,
            number=own_number or number or "",
            persona=None if merged_persona.empty else merged_persona,
            repeat=repeat or default_repeat,
            required_pass_rate=rate or default_rate,
            expect=expect,
            timeouts=_timeouts_over(timeouts, default_timeouts),
            first_message=opening,
        )

    def scenario_name(self, item: dict[str, Any], path: str, seen: dict[str, int]) -> str | None:
        """A scenario's name, checked to be free of '#' and unique in the suite (`seen`: name -> index)."""
        name = self.text(item, "name", path)
        if name is None:
            return None
        name_line = _key_line(item, "name")
        if "#" in name:
            self.problem(f"{path}.name", name_line, "must not contain '#' (it marks repeats: name#2)")
        elif name in seen:
            self.problem(f"{path}.name", name_line, f"'{name}' is already the name of scenarios[{seen[name]}]")
        else:
            seen[name] = int(path[len("scenarios[") : -1])
        return name


def _timeouts_over(own: Timeouts | None, default: Timeouts) -> Timeouts:
    """A scenario's timeouts, each unset one taken from the defaults."""
    return Timeouts(call_s=(own.call_s if own else None) or default.call_s)


def _first_words(text: str, most: int = 48) -> str:
    """The start of `text`, cut at a word boundary, for a name."""
    flat = " ".join(text.split())
    if len(flat) <= most:
        return flat.rstrip(".")
    cut = flat[:most].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + "…"

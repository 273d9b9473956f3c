"""Assertions read from the transcript, checked only on a call that connected: `transcript_contains`,
`transcript_not_contains`, `transcript_matches`, `max_turns`, `max_first_response_s`, `keypad_sent`."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from callcheck.domain.assertions.base import (
    Assertion,
    AssertionResult,
    CallEvidence,
    Parsed,
    Status,
    SyntaxProblem,
    choice,
    describe_turn,
    mapping_keys,
    not_value,
    num,
    quoted,
    text_problems,
)
from callcheck.domain.assertions.call import seconds_above_zero
from callcheck.domain.evidence import Speaker, keys_of
from callcheck.text import counted

SPEAKERS: tuple[str, ...] = ("caller", "business")
KEYPAD_PATTERN = re.compile(r"^[wW]*[0-9*#][0-9*#wW]*$")  # at least one key; w and W are pauses

TranscriptKind = Literal["transcript_contains", "transcript_not_contains", "transcript_matches"]


class TranscriptExpectation(Assertion):
    """Some turn (not_contains: no turn) has `text` (matches: the regex `text`); optionally of one speaker."""

    kinds: ClassVar[tuple[str, ...]] = ("transcript_contains", "transcript_not_contains", "transcript_matches")
    reads_transcript: ClassVar[bool] = True
    kind: TranscriptKind
    text: str
    speaker: Speaker | None = None

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`<kind>: <text>` or `<kind>: {speaker, text}`; a `transcript_matches` text must compile as a regex."""
        speaker = None
        if isinstance(value, str):
            text: Any = value
            problems = text_problems(value)
        elif isinstance(value, dict):
            problems = mapping_keys(value, ("text", "speaker"), ("text",))
            text = value.get("text")
            if "text" in value:
                problems += text_problems(text, "text")
            speaker = value.get("speaker")
            if speaker is not None:
                problems += choice(speaker, SPEAKERS, "speaker", "speaker")
        else:
            return None, [SyntaxProblem(message=f"must be a text or {{speaker, text}}{not_value(value)}")]
        if not problems and kind == "transcript_matches":
            try:
                re.compile(text)
            except re.error as exc:
                field = "text" if isinstance(value, dict) else None
                problems.append(SyntaxProblem(message=f"invalid regular expression: {exc}", field=field))
        if problems:
            return None, problems
        return cls(kind=kind, text=text, speaker=speaker), []  # type: ignore[arg-type]

    def describe(self) -> str:
        """The assertion as a person reads it."""
        who = f"{self.speaker} " if self.speaker else ""
        return f"{self.kind}: {who}{quoted(self.text)}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The first spoken turn (of the speaker, if given) that has the text; none: the evidence says so."""
        pattern = (
            re.compile(self.text)
            if self.kind == "transcript_matches"
            else re.compile(re.escape(" ".join(self.text.split())).replace(r"\ ", r"\s+"), re.IGNORECASE)
        )
        # Silence ("nothing recognised") is not something said: it never matches, nor counts as a turn searched.
        candidates = [
            (i, t) for i, t in enumerate(ev.turns) if t.spoken and (self.speaker is None or t.speaker == self.speaker)
        ]
        for index, turn in candidates:
            match = pattern.search(turn.text or "")
            if match:
                status: Status = "fail" if self.kind == "transcript_not_contains" else "pass"
                return self.answer(status, describe_turn(index, turn, match.span()), turn_index=index)
        who = f"{self.speaker} " if self.speaker else ""
        verb = "matches" if self.kind == "transcript_matches" else "contains"
        evidence = f"no {who}turn (of {len(candidates)}) {verb} {quoted(self.text)}"
        return self.answer("pass" if self.kind == "transcript_not_contains" else "fail", evidence)


class MaxTurnsExpectation(Assertion):
    """At most `turns` spoken turns, both sides counted."""

    kinds: ClassVar[tuple[str, ...]] = ("max_turns",)
    reads_transcript: ClassVar[bool] = True
    kind: Literal["max_turns"] = "max_turns"
    turns: int

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`max_turns: <whole number of at least 1>`."""
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return cls(turns=value), []
        return None, [SyntaxProblem(message=f"must be a whole number of turns of at least 1{not_value(value)}")]

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_turns: {self.turns}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The spoken-turn count; on a fail, the first turn over the limit."""
        figures = ev.figures
        counts = f"{figures.turns} turns (caller {figures.caller_turns}, business {figures.business_turns})"
        if figures.turns <= self.turns:
            return self.answer("pass", counts)
        spoken = [(i, t) for i, t in enumerate(ev.turns) if t.spoken]
        index, turn = spoken[self.turns]
        return self.answer("fail", f"{counts}; first over the limit: {describe_turn(index, turn)}", turn_index=index)


class MaxFirstResponseExpectation(Assertion):
    """The business first spoke at most `seconds` into the call."""

    kinds: ClassVar[tuple[str, ...]] = ("max_first_response_s",)
    reads_transcript: ClassVar[bool] = True
    kind: Literal["max_first_response_s"] = "max_first_response_s"
    seconds: float

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`max_first_response_s: <seconds above 0>`."""
        return seconds_above_zero(cls, value)

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_first_response_s: {num(self.seconds)}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """When the business first spoke."""
        if not ev.turns:
            return self.answer("not_evaluated", "transcript = empty", "the call has no transcript")
        for index, turn in enumerate(ev.turns):
            if turn.speaker == "business" and turn.spoken:
                status: Status = "pass" if turn.time_in_call_secs <= self.seconds else "fail"
                return self.answer(status, describe_turn(index, turn), turn_index=index)
        return self.answer("fail", f"the business never spoke in {counted(len(ev.turns), 'turn')}")


class KeypadSentExpectation(Assertion):
    """The caller sent `digits` on the keypad (as a run within everything it sent, in order)."""

    kinds: ClassVar[tuple[str, ...]] = ("keypad_sent",)
    reads_transcript: ClassVar[bool] = True
    kind: Literal["keypad_sent"] = "keypad_sent"
    digits: str

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`keypad_sent: "<digits>"`, quoted."""
        # A string only: YAML reads `012` as the number 12 and would silently lose the leading zero.
        if isinstance(value, str) and KEYPAD_PATTERN.fullmatch(value):
            return cls(digits=value), []
        message = f'must be quoted keypad digits (0-9, *, #; w and W are pauses), e.g. "2"{not_value(value)}'
        return None, [SyntaxProblem(message=message)]

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"keypad_sent: {quoted(self.digits)}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The digits as a run within the keys the caller's presses sent (pauses ignored)."""
        # Only a press whose result said it was sent counts: a failed one did not reach the line, and one with no
        # result is unknown, never taken as sent. Pauses (w, W) are not keys: "1w2" sent "12", and the evidence
        # shows "1w2".
        presses = [p for p in ev.figures.keypad if p.ok is True]
        wanted = keys_of(self.digits)
        sent = "".join(p.keys for p in presses)
        shown = " ".join(p.digits for p in presses)
        if wanted and wanted in sent:
            start = sent.index(wanted)
            offset = 0
            for press in presses:
                if offset + len(press.keys) > start:
                    evidence = f"keypad '{shown}'; '{press.digits}' sent at {press.time_in_call_secs:g}s"
                    return self.answer("pass", evidence)
                offset += len(press.keys)
        failed = [p.digits for p in ev.figures.keypad if p.ok is False]
        unknown = [p.digits for p in ev.figures.keypad if p.ok is None]
        details = []
        if failed:
            details.append(f"presses that failed: {', '.join(failed)}")
        if unknown:
            details.append(f"presses with no result (unknown whether sent): {', '.join(unknown)}")
        return self.answer("fail", f"keypad sent '{shown}'" if sent else "no keypad digits sent", "; ".join(details))

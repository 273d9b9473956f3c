"""Assertions on the platform's analysis of a call: `outcome`, `criterion`, `data_collected`, `reached_human`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from callcheck.domain.assertions.base import (
    ANALYSIS_RESULTS,
    AnalysisResult,
    Assertion,
    AssertionResult,
    CallEvidence,
    Parsed,
    Status,
    SyntaxProblem,
    analysis_missing,
    choice,
    mapping_keys,
    not_value,
    shown_value,
    text_problems,
)


class OutcomeExpectation(Assertion):
    """ElevenLabs' analysis `call_successful` equals `result`."""

    kinds: ClassVar[tuple[str, ...]] = ("outcome",)
    kind: Literal["outcome"] = "outcome"
    result: AnalysisResult

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`outcome: success|failure|unknown`."""
        problems = choice(value, ANALYSIS_RESULTS, "outcome")
        return (None, problems) if problems else (cls(result=value), [])

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"outcome: {self.result}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """Compare the analysis' call_successful; `unknown` is evidence only when `unknown` is expected."""
        if ev.analysis is None:
            return analysis_missing(self)
        actual = ev.analysis.call_successful
        evidence = f"analysis.call_successful = {actual or 'none'}"
        if actual is None:
            return self.answer("not_evaluated", evidence, "the analysis has no call_successful")
        if actual == "unknown" and self.result != "unknown":
            # The platform could not tell; that is not evidence either way.
            return self.answer("not_evaluated", evidence, "ElevenLabs could not tell whether the call succeeded")
        return self.answer("pass" if actual == self.result else "fail", evidence, ev.analysis.summary or "")


class CriterionExpectation(Assertion):
    """The evaluation criterion `id` has the result `result`."""

    kinds: ClassVar[tuple[str, ...]] = ("criterion",)
    kind: Literal["criterion"] = "criterion"
    id: str
    result: AnalysisResult = "success"

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`criterion: <id>` or `criterion: {id, result}`."""
        if isinstance(value, str):
            problems = text_problems(value)
            return (None, problems) if problems else (cls(id=value.strip()), [])
        if not isinstance(value, dict):
            return None, [SyntaxProblem(message=f"must be a criterion id or {{id, result}}{not_value(value)}")]
        problems = mapping_keys(value, ("id", "result"), ("id",))
        if "id" in value:
            problems += text_problems(value["id"], "id")
        if "result" in value:
            problems += choice(value["result"], ANALYSIS_RESULTS, "result", "result")
        if problems:
            return None, problems
        return cls(id=value["id"].strip(), result=value.get("result", "success")), []

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"criterion: {self.id} = {self.result}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """Compare the criterion's result in the analysis."""
        if ev.analysis is None:
            return analysis_missing(self)
        found = ev.analysis.criteria.get(self.id)
        if found is None:
            known = ", ".join(sorted(ev.analysis.criteria)) or "none"
            return self.answer(
                "not_evaluated", f"analysis.criteria.{self.id} = missing", f"criteria in the analysis: {known}"
            )
        evidence = f"analysis.criteria.{self.id} = {found.result}"
        if found.result == "unknown" and self.result != "unknown":
            return self.answer("not_evaluated", evidence, found.rationale or "the criterion could not be judged")
        return self.answer("pass" if found.result == self.result else "fail", evidence, found.rationale or "")


class ReachedHumanExpectation(Assertion):
    """Whether the caller reached a human, per the `reached_human` data-collection item."""

    kinds: ClassVar[tuple[str, ...]] = ("reached_human",)
    kind: Literal["reached_human"] = "reached_human"
    value: bool

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`reached_human: true|false` (unquoted)."""
        if isinstance(value, bool):
            return cls(value=value), []
        hint = " (unquoted)" if isinstance(value, str) and value.strip().lower() in ("true", "false") else ""
        return None, [SyntaxProblem(message=f"must be true or false{hint}{not_value(value)}")]

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"reached_human: {str(self.value).lower()}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The journey's reached_human: from the analysis when it says, else from the call itself."""
        actual = ev.figures.reached_human
        data = ev.analysis.data if ev.analysis else {}
        rationale = (data["reached_human"].rationale or "") if "reached_human" in data else ""
        if actual is None:
            # Not collected (the key is absent or its value null) reads "missing" whichever way it reached us; a value
            # that is there but not yes/no is shown as it is.
            raw = shown_value(data["reached_human"].value) if "reached_human" in data else "missing"
            return self.answer("not_evaluated", f"analysis.data.reached_human = {raw}", "not collected by the analysis")
        status: Status = "pass" if actual == self.value else "fail"
        from_analysis = "reached_human" in data and data["reached_human"].value is not None
        if not from_analysis:
            # The analysis said nothing: the journey decided from the call itself (nobody answered, or a voicemail).
            why = (
                "a voicemail answered"
                if ev.figures.voicemail
                else f"the call was not answered ({ev.facts.call_result})"
            )
            return self.answer(status, f"journey.reached_human = {str(actual).lower()}", why)
        return self.answer(status, f"analysis.data.reached_human = {str(actual).lower()}", rationale)


def _normal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        # 4821.0 from a number-typed data item still equals "4821".
        return str(int(value))
    return " ".join(str(value).split()).casefold()


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


class DataCollectedExpectation(Assertion):
    """The data-collection item `key` was collected (and equals `value` when one is given)."""

    kinds: ClassVar[tuple[str, ...]] = ("data_collected",)
    kind: Literal["data_collected"] = "data_collected"
    key: str
    value: str | int | float | bool | None = None

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`data_collected: <key>` or `data_collected: {key, value}`."""
        if isinstance(value, str):
            problems = text_problems(value)
            return (None, problems) if problems else (cls(key=value.strip()), [])
        if not isinstance(value, dict):
            return None, [SyntaxProblem(message=f"must be a key or {{key, value}}{not_value(value)}")]
        problems = mapping_keys(value, ("key", "value"), ("key",))
        if "key" in value:
            problems += text_problems(value["key"], "key")
        expected = value.get("value")
        if expected is not None and not _scalar(expected):
            problems.append(
                SyntaxProblem(message=f"must be a text, number or true/false{not_value(expected)}", field="value")
            )
        if problems:
            return None, problems
        return cls(key=value["key"].strip(), value=expected), []

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"data_collected: {self.key}" + ("" if self.value is None else f" = {shown_value(self.value)}")

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The item was extracted (non-empty), and equals the expected value when one is given."""
        if ev.analysis is None:
            return analysis_missing(self)
        item = ev.analysis.data.get(self.key)
        if item is None:
            known = ", ".join(sorted(ev.analysis.data)) or "none"
            return self.answer(
                "not_evaluated", f"analysis.data.{self.key} = missing", f"data items in the analysis: {known}"
            )
        evidence = f"analysis.data.{self.key} = {shown_value(item.value)}"
        if item.value is None or (isinstance(item.value, str) and not item.value.strip()):
            # The item exists on the agent but nothing was extracted: the caller did not collect it.
            return self.answer("fail", evidence, item.rationale or "nothing was collected")
        if self.value is None:
            return self.answer("pass", evidence, item.rationale or "")
        status: Status = "pass" if _normal(item.value) == _normal(self.value) else "fail"
        return self.answer(status, evidence, item.rationale or "")

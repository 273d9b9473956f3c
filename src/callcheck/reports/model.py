"""The one result model of a suite run, from which the JUnit, JSON and HTML reports are all rendered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from callcheck.domain.assertions import CallEvidence, Verdict, excerpt
from callcheck.domain.evidence import Analysis, CallFacts, Speaker, Turn
from callcheck.domain.stats import PassRate, pass_rate
from callcheck.domain.suite import PlannedCall, Suite

# A transcript excerpt keeps the opening and the end of the call, where tests are usually decided.
EXCERPT_HEAD_TURNS = 10
EXCERPT_TAIL_TURNS = 6
EXCERPT_TEXT_CHARS = 240
NOTE_CHARS = 300  # a note (an upstream error) is shown on one line, cut to this length

OVERRIDES_NOT_SENT = "not sent (the agent does not allow overriding them): "


class TranscriptLine(BaseModel):
    """One turn of a transcript excerpt; `index` is the turn's index in the full transcript."""

    index: int
    speaker: Speaker
    time_s: float
    text: str


class RunResult(BaseModel):
    """One call of a scenario (one repeat) and its verdict."""

    display_name: str  # `name`, `name#2`...
    scenario: str
    repeat: int = 1
    call_id: str | None = None
    state: str
    duration_s: float | None = None
    first_response_s: float | None = None
    time_to_answer_s: float | None = None  # ringing time until the line picked up
    cost_credits: float | None = None
    cost_usd: float | None = None
    verdict: Verdict
    transcript_excerpt: list[TranscriptLine] = Field(default_factory=list)
    transcript_turns: int = 0  # turns in the full transcript (the excerpt may hold fewer)
    # The whole conversation, every turn untruncated, tool-only turns and tool calls included (the JSON report's).
    transcript: list[Turn] = Field(default_factory=list)
    analysis: Analysis | None = None  # ElevenLabs' post-call analysis, which outcome/criterion/data assertions read
    facts: CallFacts | None = None  # ElevenLabs' metadata of the call (status, termination reason, cost...)
    simulated: bool = False  # the call ran against the sandbox, not a real phone line
    note: str | None = None  # e.g. why a call could not be placed
    # Persona override fields (e.g. "tts.voice_id") left out of the call because the agent does not allow them.
    overrides_not_sent: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        """`pass`, `fail` or `not_evaluated` (some assertion could not be checked, none failed)."""
        return self.verdict.status

    @computed_field  # type: ignore[prop-decorator]
    @property
    def notes(self) -> list[str]:
        """What a reader of this call should know besides its assertions, each on one line (every report shows
        these): the error that kept the call from being placed, the persona fields it was placed without."""
        notes = []
        if self.note:
            notes.append(excerpt(self.note, NOTE_CHARS))
        if self.overrides_not_sent:
            notes.append(OVERRIDES_NOT_SENT + ", ".join(self.overrides_not_sent))
        facts = self.facts
        if facts is not None and self.state != "completed":
            if facts.error_code is not None or facts.error_reason:
                code = f" {facts.error_code}" if facts.error_code is not None else ""
                notes.append(
                    excerpt(f"ElevenLabs reported error{code}: {facts.error_reason or 'no reason'}", NOTE_CHARS)
                )
            notes.extend(excerpt(f"ElevenLabs warning: {w}", NOTE_CHARS) for w in facts.warnings)
        return notes


# Why a planned call was never placed: the run was cancelled, or had to stop placing calls (its agent vanished...).
NotRunCause = Literal["cancelled", "stopped"]
NOT_RUN_WORDS: dict[str, str] = {"cancelled": "cancelled", "stopped": "the run stopped placing calls"}


class NotRun(BaseModel):
    """A planned call (one repeat) that was never placed, e.g. because the run was cancelled first."""

    display_name: str  # `name`, `name#2`...
    scenario: str
    repeat: int = 1
    cause: NotRunCause
    reason: str  # the sentence reports show, e.g. "run cancelled before this call was placed"


class ScenarioReport(BaseModel):
    """Every run of one scenario, with its pass rate against the required rate."""

    name: str
    goal: str = ""
    required_pass_rate: float = 1.0
    planned_runs: int | None = None  # repeats asked for; more than len(runs) when the run was cancelled
    runs: list[RunResult] = Field(default_factory=list)
    not_run: list[NotRun] = Field(default_factory=list)  # planned repeats never placed (cancel, run stopped)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stats(self) -> PassRate:
        """Pass rate, 95% Wilson interval, met and flaky."""
        passed = sum(1 for run in self.runs if run.verdict.passed)
        return pass_rate(passed, len(self.runs), self.required_pass_rate)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True when the observed pass rate reaches the required rate."""
        return self.stats.met

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> str:
        """`pass` (the rate is met), `flaky` (missed, but the interval contains the required rate) or `fail`.

        Calls that were never placed (`not_run`) do not count either way; reports show them beside the status.
        """
        if self.passed:
            return "pass"
        return "flaky" if self.stats.flaky else "fail"

    def not_run_summary(self) -> str:
        """`4 not run: cancelled` (or an empty string when every planned call ran)."""
        if not self.not_run:
            return ""
        words = ", ".join(NOT_RUN_WORDS[cause] for cause in sorted({n.cause for n in self.not_run}))
        return f"{len(self.not_run)} not run: {words}"


class RunReport(BaseModel):
    """A whole suite run."""

    suite: str
    business: str
    source: str = ""
    run_id: str | None = None  # the stored run (GET /api/runs/{id})
    concurrency: int | None = None  # most calls active at once, as asked
    rate_per_min: float | None = None  # most calls placed per minute, as asked (None: no limit)
    token_name: str | None = None  # the API token that started the run (None: no token in use)
    started_at: datetime
    finished_at: datetime | None = None
    cancelled: bool = False
    simulated: bool = False
    scenarios: list[ScenarioReport] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        """True when every scenario reached its required rate and the run was not cancelled."""
        return bool(self.scenarios) and not self.cancelled and all(s.passed for s in self.scenarios)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def totals(self) -> dict[str, int]:
        """Counts of runs by status, and of scenarios passed and flaky."""
        runs = [run for s in self.scenarios for run in s.runs]
        return {
            "scenarios": len(self.scenarios),
            "scenarios_passed": sum(1 for s in self.scenarios if s.passed),
            "scenarios_flaky": sum(1 for s in self.scenarios if s.stats.flaky),
            "runs": len(runs),
            "runs_passed": sum(1 for r in runs if r.status == "pass"),
            "runs_failed": sum(1 for r in runs if r.status == "fail"),
            "runs_not_evaluated": sum(1 for r in runs if r.status == "not_evaluated"),
            "runs_not_run": sum(len(s.not_run) for s in self.scenarios),
        }

    @property
    def exit_code(self) -> int:
        """0 when every scenario passed, 1 otherwise (2, could not run, is the runner's to give)."""
        return 0 if self.passed else 1

    @property
    def duration_s(self) -> float | None:
        """Wall-clock length of the run."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def transcript_excerpt(
    turns: Sequence[Turn], head: int = EXCERPT_HEAD_TURNS, tail: int = EXCERPT_TAIL_TURNS
) -> list[TranscriptLine]:
    """The first `head` and last `tail` spoken turns, each cut to a readable length."""
    spoken = [(i, t) for i, t in enumerate(turns) if t.text and t.text.strip()]
    kept = spoken if len(spoken) <= head + tail else spoken[:head] + spoken[-tail:]
    return [
        TranscriptLine(index=i, speaker=t.speaker, time_s=t.time_in_call_secs, text=excerpt(t.text, EXCERPT_TEXT_CHARS))
        for i, t in kept
    ]


def run_result(
    planned: PlannedCall,
    evidence: CallEvidence,
    verdict: Verdict,
    *,
    simulated: bool = False,
    note: str | None = None,
    overrides_not_sent: Sequence[str] = (),
) -> RunResult:
    """The report line of one planned call, from its evidence and verdict."""
    figures = evidence.figures
    return RunResult(
        display_name=planned.display_name,
        scenario=planned.scenario,
        repeat=planned.repeat,
        call_id=evidence.call_id,
        state=evidence.state.value,
        duration_s=evidence.facts.duration_secs if evidence.facts.duration_secs is not None else None,
        first_response_s=figures.first_response_s,
        time_to_answer_s=figures.time_to_answer_s,
        cost_credits=evidence.facts.cost,
        cost_usd=evidence.facts.cost_usd,
        verdict=verdict,
        transcript_excerpt=transcript_excerpt(evidence.turns),
        transcript_turns=len(evidence.turns),
        transcript=list(evidence.turns),
        analysis=evidence.analysis,
        facts=evidence.facts,
        simulated=simulated,
        note=note,
        overrides_not_sent=list(overrides_not_sent),
    )


def not_run_result(planned: PlannedCall, stopped: str | None = None) -> NotRun:
    """The report line of a planned call that was never placed: the run was cancelled, or `stopped` for a reason."""
    cause: NotRunCause = "stopped" if stopped else "cancelled"
    reason = "run cancelled before this call was placed"
    if stopped:
        reason = f"run stopped before this call was placed ({excerpt(stopped, NOTE_CHARS)})"
    return NotRun(
        display_name=planned.display_name, scenario=planned.scenario, repeat=planned.repeat, cause=cause, reason=reason
    )


def build_report(
    suite: Suite,
    results: Sequence[RunResult],
    *,
    started_at: datetime,
    finished_at: datetime | None = None,
    cancelled: bool = False,
    only: Sequence[str] | None = None,
    stopped: str | None = None,
    run_id: str | None = None,
    concurrency: int | None = None,
    rate_per_min: float | None = None,
    token_name: str | None = None,
) -> RunReport:
    """The report of a run of `suite`: its results grouped by scenario, in the suite's order.

    A planned call with no result was never placed: it is reported as not run, because the run was cancelled
    or, when `stopped` gives the reason, because the run had to stop placing calls.
    """
    by_scenario: dict[str, list[RunResult]] = {}
    for result in results:
        by_scenario.setdefault(result.scenario, []).append(result)
    ran = {(r.scenario, r.repeat) for r in results}
    skipped: dict[str, list[NotRun]] = {}
    for planned in suite.planned_calls(only):
        if (planned.scenario, planned.repeat) not in ran:
            skipped.setdefault(planned.scenario, []).append(not_run_result(planned, stopped))
    scenarios = [
        ScenarioReport(
            name=scenario.name,
            goal=scenario.goal,
            required_pass_rate=scenario.required_pass_rate,
            planned_runs=scenario.repeat,
            runs=sorted(by_scenario.get(scenario.name, []), key=lambda r: r.repeat),
            not_run=skipped.get(scenario.name, []),
        )
        for scenario in suite.scenarios
        if not only or scenario.name in only
    ]
    return RunReport(
        suite=suite.name,
        business=suite.business,
        source=suite.source,
        run_id=run_id,
        concurrency=concurrency,
        rate_per_min=rate_per_min,
        token_name=token_name,
        started_at=started_at,
        finished_at=finished_at,
        cancelled=cancelled,
        simulated=bool(results) and all(r.simulated for r in results),
        scenarios=scenarios,
    )

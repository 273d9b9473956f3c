"""The web pages: start a test, watch a call live, browse the history.

Pages are rendered on the server (Jinja2, autoescaped). A call page stays live through the call's SSE stream
(`GET /api/calls/{id}/events`): each event makes htmx re-fetch the affected part (`/calls/{id}/parts/...`), so the
HTML of a call is produced in one place, these templates. The form stores the context and places the call with
`fetch` on `POST /api/context` and `POST /api/call`, the same code the seed's curl examples use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles

from callcheck import __version__
from callcheck.domain.access import TokenScope
from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import E164_ERROR, E164_PATTERN, number_filter
from callcheck.domain.prompts import DEFAULT_SCENARIO, MISSING_DESCRIPTION_ERROR
from callcheck.edge.deps import SESSION_KEY, ServicesDep
from callcheck.edge.guard import csrf_token
from callcheck.errors import InvalidInput
from callcheck.presenters.calls import call_detail, call_summary
from callcheck.providers import caller_for
from callcheck.services import Services
from callcheck.store.repo import Context, new_id

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

# autoescape=True for every template, whatever its file name: all user text (descriptions, scenarios, transcripts,
# upstream messages) reaches the page through these templates.
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, trim_blocks=True)
)

# Pages load nothing from elsewhere and run no inline script: a stray unescaped string could not execute.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

HISTORY_PAGE_SIZE = 25
STALE_LINK = "This page link is no longer valid; showing the newest {} instead."

log = logging.getLogger("callcheck.web")

router = APIRouter(include_in_schema=False)

# Every page answers HEAD as it answers GET (link checkers and uptime probes ask with HEAD; the server drops the body).
PAGE_METHODS = ["GET", "HEAD"]


def static_files() -> StaticFiles:
    """The vendored static assets (CSS, JS, htmx), served at /static by callcheck itself."""
    return StaticFiles(directory=STATIC_DIR)


# -- words for states -----------------------------------------------------------------------------------------

STATE_LABELS: dict[str, str] = {
    CallState.QUEUED: "Queued",
    CallState.DIALING: "Dialing",
    CallState.RINGING: "Ringing",
    CallState.IN_PROGRESS: "In progress",
    CallState.PROCESSING: "Processing",
    CallState.COMPLETED: "Completed",
    CallState.FAILED: "Failed",
    CallState.NO_ANSWER: "No answer",
    CallState.BUSY: "Busy",
    CallState.TIMED_OUT: "Timed out",
    CallState.CANCELLED: "Cancelled",
}

# One sentence per state for the live status line (read out by screen readers as the call moves on).
STATE_SENTENCES: dict[str, str] = {
    CallState.QUEUED: "Waiting to be placed.",
    CallState.DIALING: "Dialing: asking ElevenLabs to place the call.",
    CallState.RINGING: "Ringing: the business's phone is ringing.",
    CallState.IN_PROGRESS: "In progress: the business answered and the conversation is under way.",
    CallState.PROCESSING: "Processing: the call has ended and ElevenLabs is analysing it.",
    CallState.COMPLETED: "Completed: the call ended and was analysed.",
    CallState.FAILED: "Failed: the call did not go through.",
    CallState.NO_ANSWER: "No answer: nobody picked up.",
    CallState.BUSY: "Busy: the line was busy.",
    CallState.TIMED_OUT: "Timed out: callcheck stopped following the call.",
    CallState.CANCELLED: "Cancelled before it was placed.",
}

# The steps every call is shown going through; the last one is its final state.
LIVE_STEPS = (CallState.DIALING, CallState.RINGING, CallState.IN_PROGRESS, CallState.PROCESSING)

VERDICT_WORDS = {"success": "Successful", "failure": "Not successful", "unknown": "Unknown"}


def state_label(state: str | None) -> str:
    """A state as a person reads it."""
    return STATE_LABELS.get(state or "", (state or "unknown").replace("_", " ").capitalize())


def outcome_class(state: str) -> str:
    """CSS tone of a state: good, bad or neutral (still going)."""
    if state == CallState.COMPLETED:
        return "good"
    if state in {s.value for s in CallState if s.terminal}:
        return "bad"
    return "live"


# -- formatting -----------------------------------------------------------------------------------------------


def clock(seconds: float | None) -> str:
    """0:35, 12:03 or 1:02:03; an em dash when unknown."""
    if seconds is None:
        return "—"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_seconds(seconds: float | None) -> str:
    """4.2 s (or a clock past a minute); an em dash when unknown."""
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)


def yes_no(value: bool | None) -> str:
    """Yes / No / Unknown."""
    return "Unknown" if value is None else ("Yes" if value else "No")


def when(iso: str | None) -> str:
    """An ISO timestamp as `2025-01-31 14:05:09 UTC` (the page's script shows it in the reader's time zone)."""
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def humanize(name: str) -> str:
    """`reached_human` -> `Reached human`."""
    return name.replace("_", " ").strip().capitalize()


templates.env.filters.update(clock=clock, seconds=short_seconds, when=when, humanize=humanize)
templates.env.globals.update(state_label=state_label, outcome_class=outcome_class, version=__version__)
templates.env.globals.update(csrf_token=csrf_token)  # base.html's <meta name="csrf-token">, read by the page's fetches


# -- what the call page shows ---------------------------------------------------------------------------------


@dataclass
class Step:
    """One step of the lifecycle timeline."""

    key: str
    label: str
    status: str  # done | current | pending | skipped
    offset: str | None = None  # time since the call was created, when the step was reached
    tone: str = "live"


@dataclass
class Chip:
    """A tool the caller used in a turn, as a small label (keypad presses, hanging up)."""

    text: str
    tone: str  # keypad | ok | bad | info


@dataclass
class Bubble:
    """One turn of the conversation."""

    speaker: str  # caller | business
    who: str
    text: str
    time: str
    chips: list[Chip] = field(default_factory=list)


@dataclass
class Figure:
    """One journey figure."""

    label: str
    value: str
    note: str | None = None


def _offset(start: str, at: str) -> str:
    seconds = (datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds()
    return f"+{short_seconds(max(seconds, 0.0))}"


def _reached_at(call: dict[str, Any]) -> dict[str, str]:
    """When the call first entered each state, from its state events."""
    reached: dict[str, str] = {}
    for event in call.get("events", []):
        if event.get("kind") == "state" and event.get("state") and event["state"] not in reached:
            reached[event["state"]] = event["at"]
    return reached


def _step_status(step: CallState, index: int, position: int, state: CallState, reached: dict[str, str]) -> str:
    if step == state:
        return "current"
    if step in reached or (not state.terminal and index < position) or state == CallState.COMPLETED:
        # Polling can miss a short state (a fast call may first be seen already over); a call that got further,
        # or completed, went through it all the same, only its time is unknown.
        return "done"
    return "skipped" if state.terminal else "pending"  # skipped: e.g. a busy line never answers


def _offsets_by_next(steps: list[Step]) -> None:
    """A step the call went through between two looks (a short "processing") has no time of its own; it was reached
    by the time of the next step that has one, which is what it shows, rather than nothing."""
    later: str | None = None
    for step_ in reversed(steps):
        if step_.offset:
            later = step_.offset
        elif step_.status == "done" and later:
            step_.offset = f"by {later}"


def timeline(call: dict[str, Any]) -> list[Step]:
    """The lifecycle as steps: dialing, ringing, in progress, processing, then the final state."""
    state = CallState(call["state"])
    reached = _reached_at(call)
    steps: list[Step] = []
    order = list(LIVE_STEPS)
    if CallState.QUEUED in reached:
        order.insert(0, CallState.QUEUED)
    position = order.index(state) if state in order else len(order)
    for index, step in enumerate(order):
        status = _step_status(step, index, position, state, reached)
        at = reached.get(step)
        steps.append(Step(step.value, state_label(step), status, _offset(call["created_at"], at) if at else None))
    if state.terminal:
        at = reached.get(state.value) or call.get("ended_at")
        offset = _offset(call["created_at"], at) if at else None
        steps.append(Step(state.value, state_label(state), "done", offset, outcome_class(state)))
    else:
        steps.append(Step("ended", "Ended", "pending"))
    _offsets_by_next(steps)
    return steps


def _chip(tool: dict[str, Any]) -> Chip:
    name = str(tool.get("name") or "tool")
    kind = tool.get("kind")
    status = tool.get("status")
    failed = status == "failed"
    # No result reported: whether it happened is not known, and it is never shown as done.
    suffix = " (failed)" if failed else (" (no result)" if status == "unknown" else "")
    if kind == "keypad":
        return Chip(f"Pressed {tool.get('keys') or ''}{suffix}", "bad" if failed else "keypad")
    if kind == "hang_up":
        return Chip("Hung up" + suffix, "bad" if failed else "info")
    if kind == "voicemail":
        return Chip("Voicemail detected" + suffix, "bad" if failed else "info")
    return Chip(humanize(name) + suffix, "bad" if failed else "info")


def conversation(call: dict[str, Any]) -> list[Bubble]:
    """The transcript as speech bubbles, tool calls (keypad presses...) as chips on their turn."""
    bubbles = []
    for turn in call.get("transcript") or []:
        speaker = "caller" if turn.get("speaker") == "caller" else "business"
        bubbles.append(
            Bubble(
                speaker=speaker,
                who="AI caller" if speaker == "caller" else "Business",
                text="(silence)" if turn.get("silence") else str(turn.get("text") or ""),
                time=clock(turn.get("time_in_call_secs") or 0),
                chips=[_chip(t) for t in turn.get("tool_calls") or [] if isinstance(t, dict)],
            )
        )
    return bubbles


def figures(call: dict[str, Any]) -> list[Figure]:
    """The journey figures: time to first answer, turns, human reached, duration, cost."""
    journey = call.get("journey") or {}
    if not journey:
        return []
    human = yes_no(journey.get("reached_human"))
    transferred = journey.get("transferred")
    # Each press on its own, in order ("2, 0"): run together ("20") they read as one number.
    keypad = ", ".join(
        str(p.get("digits", "")) + ("" if p.get("ok") is True else " (failed)" if p.get("ok") is False else " (?)")
        for p in journey.get("keypad") or []
    )
    cost = journey.get("cost")
    cost_usd = journey.get("cost_usd")
    cost_text = "—" if cost is None else f"{cost:g} credits"
    if cost_usd is not None:
        cost_text = f"${cost_usd:.4f}" + ("" if cost is None else f" ({cost:g} credits)")
    answered_after = journey.get("time_to_answer_s")
    result = [
        Figure("Time to first answer", short_seconds(journey.get("first_response_s")), "until the business spoke"),
        Figure(
            "Turns",
            str(journey.get("turns", 0)),
            f"caller {journey.get('caller_turns', 0)}, business {journey.get('business_turns', 0)}",
        ),
        Figure("Human reached", human, "after a transfer" if transferred else None),
        Figure("Duration", clock(journey.get("duration_secs"))),
        Figure("Cost", cost_text),
        Figure("Ended by", humanize(str(journey.get("ended_by") or "unknown"))),
    ]
    if not CallState(call.get("state", "completed")).terminal:
        # Mid-call, who answered, what it cost and who hung up are not known yet: "Unknown" would mislead.
        result = [f for f in result if f.label in ("Time to first answer", "Turns", "Duration")]
    if answered_after is not None:
        result.insert(1, Figure("Time to answer", short_seconds(answered_after), "ringing until picked up"))
    if keypad:
        result.insert(2, Figure("Keypad", keypad, "w/W are pauses; (?) no result reported"))
    if journey.get("voicemail"):
        result.append(Figure("Voicemail", "Yes", "a voicemail greeting answered"))
    return result


def verdict(call: dict[str, Any]) -> dict[str, Any]:
    """ElevenLabs' verdict, summary, criteria and collected data, ready to show."""
    analysis = call.get("analysis") or {}
    outcome = analysis.get("call_successful")
    criteria = [
        {"name": humanize(name), "result": VERDICT_WORDS.get(str(c.get("result")), "Unknown"), "tone": c.get("result"),
         "rationale": c.get("rationale")}
        for name, c in (analysis.get("criteria") or {}).items()
        if isinstance(c, dict)
    ]  # fmt: skip
    data = [
        {"name": humanize(name), "value": _data_value(d.get("value")), "rationale": d.get("rationale")}
        for name, d in (analysis.get("data") or {}).items()
        if isinstance(d, dict)
    ]  # fmt: skip
    return {
        "present": bool(analysis),
        "outcome": outcome,
        "words": VERDICT_WORDS.get(str(outcome), "No verdict"),
        "title": analysis.get("title"),
        "summary": analysis.get("summary"),
        "criteria": criteria,
        "data": data,
    }


def _data_value(value: Any) -> str:
    """A collected data value as the journey figures word it: Yes / No for booleans, a dash when absent."""
    if value is None:
        return "—"
    return yes_no(value) if isinstance(value, bool) else str(value)


def silence_reason(call: dict[str, Any]) -> str:
    """Why a finished call has no conversation: never placed, not answered, or answered without a word."""
    state = call.get("state")
    if state == CallState.FAILED and not call.get("conversation_id"):
        return "Nothing was said: the call was never placed."
    if state in (CallState.BUSY, CallState.NO_ANSWER, CallState.CANCELLED, CallState.FAILED):
        return "Nothing was said: the call was not answered."
    return "Nothing was said."


def call_view(call: dict[str, Any]) -> dict[str, Any]:
    """Everything the call page's templates read, from the API's call detail."""
    state = call["state"]
    terminal = CallState(state).terminal
    has_audio = bool((call.get("metadata") or {}).get("has_audio"))
    return {
        "call": call,
        "label": state_label(state),
        "sentence": STATE_SENTENCES.get(state, state_label(state)),
        "tone": outcome_class(state),
        "terminal": terminal,
        # Keep listening after the end while a recording may still arrive; the stream itself decides when it's over.
        "live": not terminal or (has_audio and not call.get("recording_url")),
        "steps": timeline(call),
        "bubbles": conversation(call),
        "silence": silence_reason(call),
        "figures": figures(call),
        "verdict": verdict(call),
    }


# -- setup status ---------------------------------------------------------------------------------------------

SETTING_FIXES = {
    "ELEVENLABS_API_KEY": "Create an API key in your ElevenLabs account and set ELEVENLABS_API_KEY.",
    "ELEVENLABS_AGENT_ID": "Set ELEVENLABS_AGENT_ID to the id of the ElevenLabs agent that plays the caller.",
    "ELEVENLABS_AGENT_PHONE_NUMBER_ID": "Set ELEVENLABS_AGENT_PHONE_NUMBER_ID to the phone_number_id of the "
    "Twilio number you imported into ElevenLabs (the number the caller dials out from).",
}


@dataclass
class SetupCheck:
    """One line of the setup panel; names of settings only, never their values."""

    name: str
    ok: bool
    message: str
    fix: str | None = None
    warning: bool = False  # fine for placing calls, but worth knowing (the doctor's "warn": e.g. calls are polled)


def setup_checks(services: Services) -> list[SetupCheck]:
    """What is missing before a real call can be placed, from the settings (names only)."""
    missing = services.settings.missing_call_settings()
    checks = [
        SetupCheck(name, False, "is not set.", SETTING_FIXES.get(name))  # the page shows the name beside it
        for name in missing
    ]  # fmt: skip
    if not missing:
        checks.append(SetupCheck("ElevenLabs settings", True, "The settings needed to place calls are present."))
    return checks


async def doctor_checks(services: Services) -> list[SetupCheck] | None:
    """The doctor's checks (the same as GET /api/doctor) worth showing; None when this callcheck has no doctor."""
    report = await services.doctor.report(services.settings, caller_for(services))
    # Missing settings are listed by name already; skipped checks only repeat a failure above them.
    return [
        SetupCheck(c.name, c.ok, c.message, c.fix, warning=c.status == "warn")
        for c in report.checks
        if c.name != "settings" and getattr(c, "status", "fail") != "skip"
    ]


# -- the browser's own context --------------------------------------------------------------------------------


async def browser_context(request: Request, services: ServicesDep) -> Context | None:
    """The session's stored context; a browser without one gets its own id (not the shared curl "local" one)."""
    value = request.session.get(SESSION_KEY)
    if not isinstance(value, str) or not value:
        request.session[SESSION_KEY] = new_id()
        return None
    return await services.store.get_context(value)


BrowserContextDep = Annotated[Context | None, Depends(browser_context)]


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A rendered page (or part) with the headers every page gets."""
    services: Services = request.app.state.services
    response = templates.TemplateResponse(
        request,
        name,
        {"simulated_server": services.simulated, "path": request.url.path, **context},
        status_code=status_code,
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"},
    )
    return response


def not_found(request: Request, message: str) -> HTMLResponse:
    """The 404 page (the API's handler would answer JSON, which a person should not see)."""
    return page(request, "not_found.html", {"title": "Not found", "message": message}, 404)


# -- routes ---------------------------------------------------------------------------------------------------


@router.api_route("/", methods=PAGE_METHODS, response_class=HTMLResponse)
async def start_page(request: Request, services: ServicesDep, context: BrowserContextDep) -> Response:
    """Start a test: the business, the scenario, the number; and the setup status."""
    checks = setup_checks(services)
    return page(
        request,
        "start.html",
        {
            "title": "Start a test",
            "context": context,
            "default_scenario": DEFAULT_SCENARIO,
            "e164_pattern": E164_PATTERN.pattern,
            "e164_error": E164_ERROR,
            "description_error": MISSING_DESCRIPTION_ERROR,
            "checks": checks,
            "setup_ok": all(c.ok for c in checks),
            "sandbox_numbers": SANDBOX_NUMBERS if services.simulated else [],
        },
    )


# Shown under the form when the server runs against the sandbox (docs/sandbox.md, magic numbers).
SANDBOX_NUMBERS = [
    ("+15550100001", "answers and completes"),
    ("+15550100002", "never understands"),
    ("+15550100003", "transfers to a human"),
    ("+15550100004", "busy"),
    ("+15550100005", "no answer (rings until the timeout)"),
    ("+15550100006", "voicemail"),
    ("+15550100007", "IVR: press 2"),
    ("+15550100008", "IVR dead end"),
    ("+15550100500", "ElevenLabs error (HTTP 500)"),
    ("+15550100429", "ElevenLabs busy (HTTP 429, too many calls)"),
    ("+15550100200", "ElevenLabs refuses (200 with success: false)"),
    ("+15550100010", "completes; its webhook leaves the transcript out"),
    ("+15550100011", "accepted, then the conversation is never found"),
    ("+15550100012", "completes; accepted without a conversation id"),
    ("+15550100013", "ends at once: a per-call override refused"),
    ("+15550100014", "IVR where the keypad press fails"),
    ("+15550110030", "answers after 30 s of ringing (+1555011DDDD: after DDDD s)"),
]


@router.api_route("/calls", methods=PAGE_METHODS, response_class=HTMLResponse)
async def history_page(
    request: Request,
    services: ServicesDep,
    _context: BrowserContextDep,
    status: Annotated[str | None, Query()] = None,
    number: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """Past calls, newest first, filterable by status and number."""
    status = (status or "").strip() or None
    problem = None
    rows: list[dict[str, Any]] = []
    next_cursor = None
    try:
        number = number_filter(number)
    except InvalidInput as exc:
        problem = exc.message  # the raw text stays in the field, to be corrected
    if problem is None and status is not None and status not in {s.value for s in CallState}:
        problem = "Unknown status. Pick one from the list."
    if problem is None:
        try:
            calls, next_cursor = await services.store.list_calls(
                state=status, number=number, cursor=cursor or None, limit=HISTORY_PAGE_SIZE
            )
            rows = [call_summary(c).model_dump(mode="json") for c in calls]
        except InvalidInput as exc:
            problem = STALE_LINK.format("calls") if cursor else exc.message
            if cursor:
                calls, next_cursor = await services.store.list_calls(
                    state=status, number=number, limit=HISTORY_PAGE_SIZE
                )
                rows = [call_summary(c).model_dump(mode="json") for c in calls]
    return page(
        request,
        "calls.html",
        {
            "title": "History",
            "rows": rows,
            "status": status,
            "number": number,
            "states": [(s.value, state_label(s)) for s in CallState],
            "next_cursor": next_cursor,
            "paged": bool(cursor),
            "problem": problem,
        },
    )


@router.api_route("/calls/{call_id}", methods=PAGE_METHODS, response_class=HTMLResponse)
async def call_page(request: Request, call_id: str, services: ServicesDep, _context: BrowserContextDep) -> Response:
    """One call: live timeline, transcript, recording, figures and verdict."""
    call = await services.store.get_call(call_id, with_events=True)
    if call is None:
        return not_found(request, "There is no call with this id. It may be in another callcheck's database.")
    view = call_view(call_detail(call).model_dump(mode="json"))
    return page(request, "call.html", {"title": f"Call to {call.to_number}", **view})


@router.api_route("/parts/setup", methods=PAGE_METHODS, response_class=HTMLResponse)
async def setup_part(request: Request, services: ServicesDep) -> Response:
    """The doctor's findings for the setup panel, loaded after the page (they ask ElevenLabs, which takes a moment)."""
    who = getattr(request.state, "identity", None)
    if who is not None and not who.scope.allows(TokenScope.ADMIN):
        refused = SetupCheck("doctor", False, "The set-up checks are shown to tokens with the admin scope only.")
        return page(request, "parts/doctor.html", {"available": True, "problems": [refused], "passed": []})
    try:
        checks = await doctor_checks(services)
    except Exception:
        # The panel must not break the page; the operator gets the traceback, the reader a sentence.
        log.exception("set-up check failed")
        checks = [SetupCheck("doctor", False, "The set-up check itself failed; see the server's log.")]
    problems = [c for c in checks or [] if not c.ok]
    warnings = [c for c in checks or [] if c.ok and c.warning]
    passed = [c for c in checks or [] if c.ok and not c.warning]
    return page(
        request,
        "parts/doctor.html",
        {"available": checks is not None, "problems": problems, "warnings": warnings, "passed": passed},
    )


CALL_PARTS = ("timeline", "transcript", "result")


@router.api_route("/calls/{call_id}/parts/{part}", methods=PAGE_METHODS, response_class=HTMLResponse)
async def call_part(request: Request, call_id: str, part: str, services: ServicesDep) -> Response:
    """One live part of the call page, re-fetched by htmx when the call's event stream says it changed."""
    call = await services.store.get_call(call_id, with_events=True)
    if call is None or part not in CALL_PARTS:
        return not_found(request, "No such call or part.")
    # The conversation comes with the timeline it belongs to (an out-of-band swap), so a transcript fetched ahead of
    # a state change never shows turns under "Ringing".
    return page(
        request,
        f"parts/{part}.html",
        {**call_view(call_detail(call).model_dump(mode="json")), "oob_timeline": part == "transcript"},
    )

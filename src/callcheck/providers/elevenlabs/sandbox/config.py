"""How a sandbox is set up, and the magic destination numbers that choose what a simulated call does."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What happens when the sandbox dials a number (see docs/sandbox.md for the table)."""

    COMPLETED = "completed"  # answered, the caller reaches its goal and gets a confirmation number
    NOT_UNDERSTOOD = "not_understood"  # answered by a voice bot that never understands the caller
    TRANSFERRED = "transferred"  # the business transfers the caller to a human, who helps
    BUSY = "busy"  # the line is busy: call_initiation_failure, conversation failed
    NO_ANSWER = "no_answer"  # nobody picks up before the ringing timeout
    VOICEMAIL = "voicemail"  # a voicemail greeting answers; the caller's voicemail_detection tool fires
    IVR = "ivr"  # an IVR menu: the caller presses 2 and then completes its goal
    IVR_DEAD_END = "ivr_dead_end"  # an IVR menu that loops forever
    HTTP_500 = "http_500"  # outbound-call itself answers 500
    HTTP_429 = "http_429"  # outbound-call answers 429 concurrent_limit_exceeded with Retry-After
    NOT_SUCCESS = "not_success"  # outbound-call answers 200 with "success": false
    NO_TRANSCRIPT_WEBHOOK = "no_transcript_webhook"  # completed, but post_call_transcription leaves the transcript out
    VANISHES = "vanishes"  # accepted, but its conversation is never found (404 on every read, not listed)
    NO_CONVERSATION_ID = "no_conversation_id"  # completed, but the outbound answer's conversation_id is null
    REFUSES_OVERRIDES = "refuses_overrides"  # accepted, then the conversation fails at its start: override refused
    KEYPAD_FAILS = "keypad_fails"  # an IVR menu whose keypad press fails (the tool's result is an error)


NUMBER_COMPLETED = "+15550100001"
NUMBER_NOT_UNDERSTOOD = "+15550100002"
NUMBER_TRANSFERRED = "+15550100003"
NUMBER_BUSY = "+15550100004"
NUMBER_NO_ANSWER = "+15550100005"
NUMBER_VOICEMAIL = "+15550100006"
NUMBER_IVR = "+15550100007"
NUMBER_IVR_DEAD_END = "+15550100008"
NUMBER_HTTP_500 = "+15550100500"
NUMBER_HTTP_429 = "+15550100429"
NUMBER_NOT_SUCCESS = "+15550100200"
NUMBER_NO_TRANSCRIPT_WEBHOOK = "+15550100010"
NUMBER_VANISHES = "+15550100011"
NUMBER_NO_CONVERSATION_ID = "+15550100012"
NUMBER_REFUSES_OVERRIDES = "+15550100013"
NUMBER_KEYPAD_FAILS = "+15550100014"

MAGIC_NUMBERS: dict[str, Outcome] = {
    NUMBER_COMPLETED: Outcome.COMPLETED,
    NUMBER_NOT_UNDERSTOOD: Outcome.NOT_UNDERSTOOD,
    NUMBER_TRANSFERRED: Outcome.TRANSFERRED,
    NUMBER_BUSY: Outcome.BUSY,
    NUMBER_NO_ANSWER: Outcome.NO_ANSWER,
    NUMBER_VOICEMAIL: Outcome.VOICEMAIL,
    NUMBER_IVR: Outcome.IVR,
    NUMBER_IVR_DEAD_END: Outcome.IVR_DEAD_END,
    NUMBER_HTTP_500: Outcome.HTTP_500,
    NUMBER_HTTP_429: Outcome.HTTP_429,
    NUMBER_NOT_SUCCESS: Outcome.NOT_SUCCESS,
    NUMBER_NO_TRANSCRIPT_WEBHOOK: Outcome.NO_TRANSCRIPT_WEBHOOK,
    NUMBER_VANISHES: Outcome.VANISHES,
    NUMBER_NO_CONVERSATION_ID: Outcome.NO_CONVERSATION_ID,
    NUMBER_REFUSES_OVERRIDES: Outcome.REFUSES_OVERRIDES,
    NUMBER_KEYPAD_FAILS: Outcome.KEYPAD_FAILS,
}

# +1555011DDDD: rings for DDDD simulated seconds, then behaves like NUMBER_COMPLETED.
_DELAYED_ANSWER = re.compile(r"^\+1555011(\d{4})$")
DEFAULT_RING_SECS = 3.0


def delayed_answer_number(seconds: int) -> str:
    """The magic number of a line that answers after `seconds` (0-9999) of simulated ringing."""
    if not 0 <= seconds <= 9999:
        raise ValueError("seconds must be between 0 and 9999")
    return f"+1555011{seconds:04d}"


def outcome_for(number: str) -> tuple[Outcome, float]:
    """The outcome a destination number selects and how many simulated seconds it rings first."""
    delayed = _DELAYED_ANSWER.fullmatch(number)
    if delayed:
        return Outcome.COMPLETED, float(delayed.group(1))
    outcome = MAGIC_NUMBERS.get(number, Outcome.COMPLETED)
    # A busy line rejects at once; other lines ring a little, like a real phone.
    return outcome, 1.0 if outcome is Outcome.BUSY else DEFAULT_RING_SECS


class SteppedClock:
    """A sandbox clock that stands still until told to move: `advance(seconds)`.

    With it, a test walks a call through its states one step at a time and waits for callcheck to see each one,
    instead of hoping a poll lands inside a window of the real clock. Give it as `SandboxConfig(clock=...)` with
    `time_scale=1.0`, so that its seconds are simulated seconds.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (calls placed on this sandbox age by `seconds`)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._now += seconds


class HeldClock:
    """The real clock, which a test can stop and start again: `hold()`, `release()`, or `with clock.held():`.

    For a `callcheck serve --sandbox` whose calls run on their own (a browser test's page): while held, a call
    placed stands in its first state however long the page takes to load, so the page is sure to see it move once
    released. Time held is lost, never caught up: a call resumes where it stood.
    """

    def __init__(self) -> None:
        self._held_at: float | None = None
        self._lost = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            now = self._held_at if self._held_at is not None else time.monotonic()
            return now - self._lost

    def hold(self) -> None:
        with self._lock:
            if self._held_at is None:
                self._held_at = time.monotonic()

    def release(self) -> None:
        with self._lock:
            if self._held_at is not None:
                self._lost += time.monotonic() - self._held_at
                self._held_at = None

    @contextmanager
    def held(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()


@dataclass
class SandboxConfig:
    """Everything a sandbox needs; the defaults give a ready-to-call demo with no setup."""

    api_key: str = "sandbox-key"
    agent_id: str = "agent_sandbox"
    phone_number_id: str = "phnum_sandbox"
    phone_number: str = "+15550009999"  # the seeded Twilio number the caller dials from
    webhook_url: str | None = None  # where post-call webhooks go; None sends none
    webhook_secret: str = "sandbox-webhook-secret"
    send_audio_webhook: bool = False  # also send post_call_audio after post_call_transcription
    # True (with webhook_url): the workspace starts with a webhook pointing at webhook_url, signed with
    # webhook_secret, and the default agent sends it every post-call event (transcript, audio, initiation failures):
    # the account as `callcheck agent setup --webhook-url` leaves it, so `callcheck doctor` finds nothing to fix.
    workspace_webhook: bool = False
    # Where that webhook is chosen: "agent" (the agent's platform_settings.workspace_overrides.webhooks) or
    # "workspace" (the workspace's ConvAI settings, GET /v1/convai/settings, which most accounts use).
    webhook_level: str = "agent"
    # Real seconds per simulated second: 1.0 is real time, 0.02 makes a 40 s call last 0.8 s.
    time_scale: float = 1.0
    # Where a call's age is read from (seconds, scaled by time_scale): the real clock, or a SteppedClock in tests.
    # Webhooks are sent on the real clock either way, each with the conversation in its final form.
    clock: Callable[[], float] = time.monotonic
    # More numbers for GET /v1/convai/phone-numbers, each a partial list item merged over a Twilio default,
    # e.g. {"phone_number_id": "phnum_sip", "provider": "sip_trunk"} or
    # {"phone_number_id": "phnum_in", "supports_outbound": False}.
    extra_phone_numbers: list[dict[str, Any]] = field(default_factory=list)
    # True: the default agent has every override, tool, criterion and data item callcheck uses. False: bare.
    agent_ready: bool = True
    webhook_retries: int = 2  # further attempts after a failed delivery
    webhook_retry_delay_secs: float = 0.5  # real seconds before the first retry; doubles each time
    webhook_timeout_secs: float = 10.0

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.webhook_level not in ("agent", "workspace"):
            raise ValueError("webhook_level must be 'agent' or 'workspace'")

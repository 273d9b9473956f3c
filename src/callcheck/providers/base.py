"""What callcheck needs of a caller provider: the engine that places an AI phone call and reports on it.

`jobs/` (placing, following, webhooks) and `domain/` speak only of the types below; each provider (today
`providers/elevenlabs`) turns its own API and JSON into them, and owns every field name of its wire. A second one
(Vapi, Retell, direct Twilio with a realtime model) is a new folder beside `elevenlabs/` implementing
`CallerProvider`, chosen in `providers.caller_for`; see docs/providers.md.

The types are plain dataclasses over domain's models (`Turn`, `Analysis`, `CallFacts`, `CallState`), and the
doctor's `Check` (a pydantic model: GET /api/doctor answers with it): no I/O here, nothing vendor-specific.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from callcheck.domain.evidence import Analysis, CallFacts, Turn
from callcheck.domain.lifecycle import CallState


@dataclass(frozen=True)
class ConversationSnapshot:
    """One reading of a conversation, in callcheck's words."""

    conversation_id: str | None
    state: CallState | None  # None: a status callcheck does not know (the call is left as it is)
    final: bool  # the record will not change any more
    turns: list[Turn]
    has_transcript: bool  # False: the record carried no usable transcript (never store it over a kept one)
    analysis: Analysis | None
    facts: CallFacts
    user_id: str | None = None  # our call id, when the conversation was tagged with it
    status_note: str = ""  # what the provider said, for the call's history
    # The call failed because the provider's agent is not set up for callcheck: the error to show, naming the fix.
    setup_error: str | None = None
    # The provider's final record says, explicitly, that the call has no recording: none will be looked for.
    no_recording: bool = False

    @property
    def has_audio(self) -> bool:
        """Whether a recording can be fetched."""
        return self.facts.has_audio


EventKind = Literal["transcript", "audio", "initiation_failure", "other"]


@dataclass(frozen=True)
class WebhookEvent:
    """What a verified webhook tells: which conversation (and call id tag), and what happened."""

    kind: EventKind
    type: str  # the provider's own name of the event, kept with the stored webhook
    conversation_id: str | None
    user_id: str | None = None  # our call id, when the conversation was tagged with it
    snapshot: ConversationSnapshot | None = None  # transcript: the conversation as the event carries it
    audio: bytes | None = None  # audio: the recording (None when absent or unreadable)
    failure_state: CallState | None = None  # initiation_failure: the state it means
    failure_reason: str | None = None
    stored: dict[str, Any] = field(default_factory=dict)  # the event to keep (audio left out: it is kept as a file)


@dataclass(frozen=True)
class ConversationMark:
    """What a listing says of one conversation, enough to tell whether it changed since it was last fetched."""

    summary: tuple[object, ...]  # compared as a whole: it differs whenever the call moved on
    untouched: bool = False  # not started yet (ringing, nothing said): fetching it would tell nothing new


@dataclass(frozen=True)
class Listing:
    """The changed-conversations listing: each conversation's mark, and how many requests reading it took (the
    poller paces itself by them, so its requests a minute do not grow with the number of calls followed)."""

    marks: dict[str, ConversationMark]
    requests: int


@dataclass(frozen=True)
class PlacedCall:
    """A call the provider accepted: its conversation id and telephony call id (either may be unknown yet)."""

    conversation_id: str | None
    call_sid: str | None
    raw: dict[str, Any]  # the provider's answer, kept with the call


CheckStatus = Literal["pass", "fail", "warn", "skip"]


class Check(BaseModel):
    """One diagnosis: what was checked, whether it is fine, and how to fix it when not."""

    name: str
    ok: bool
    status: CheckStatus
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class AgentSetupOptions:
    """What `callcheck agent setup` was asked to do."""

    agent_id: str | None = None  # the agent to ready; None: the configured one, or create one when none is
    name: str | None = None  # the name of a created agent (the provider's default when None)
    webhook_url: str | None = None  # where post-call webhooks should go (default: from CALLCHECK_PUBLIC_URL)
    webhook_id: str | None = None  # the provider's id of that webhook, when the person knows it
    create_webhook: bool = False  # create the webhook when none points at the URL yet
    dry_run: bool = False  # say what would change; send nothing


@dataclass(kw_only=True)
class SetupResult:
    """What agent setup did (or, with dry_run, would do), in words a person reads."""

    provider: str  # the provider's name ("ElevenLabs"), as in "nothing was sent to ..."
    agent_setting: str  # the setting naming the agent (the id of a created one goes there)
    secret_setting: str  # the setting holding the webhook secret (a created webhook's secret goes there)
    agent_id: str | None
    agent_name: str | None
    created: bool
    dry_run: bool
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)  # the provider's request (sent unless dry_run)
    # Set only when setup created a webhook whose secret the provider shows this once and never again.
    webhook_secret: str | None = field(default=None, repr=False)

    @property
    def changed(self) -> bool:
        """True when something was (or would be) changed."""
        return bool(self.changes)


class CallerProvider(Protocol):
    """A caller engine. Methods that talk to the provider raise callcheck.errors' Upstream* errors (never retried
    blindly: `place_call` sends once); the pure ones (`call_request`, `decode_webhook`) never do I/O."""

    name: str  # as a person reads it in a call's history ("ElevenLabs")
    signature_header: str  # the HTTP header carrying a webhook's signature

    def call_request(
        self, to_number: str, overrides: dict[str, Any], call_id: str, max_duration_s: float | None
    ) -> dict[str, Any]:
        """The request that places this call, stored before it is sent; tagged with `call_id` so `find_call` can
        tell whether a call whose answer was lost was placed. `overrides` are the per-call settings (prompt, first
        message, voice...) keyed as `seed_overrides` and domain.suite's OVERRIDE_* paths."""
        ...

    def seed_overrides(self, prompt: str, first_message: str) -> dict[str, Any]:
        """The per-call overrides of the seed's caller: this prompt and first message."""
        ...

    def sent_overrides(self, request: dict[str, Any]) -> dict[str, Any]:
        """The per-call overrides a stored `call_request` carried (what really went out), keyed like
        `seed_overrides`; {} when it carried none."""
        ...

    async def place_call(self, request: dict[str, Any]) -> PlacedCall:
        """Send a stored `call_request` once."""
        ...

    async def allowed_overrides(self) -> set[str]:
        """The override paths (domain.suite.OVERRIDE_*) the caller agent accepts per call."""
        ...

    async def conversation(self, conversation_id: str) -> ConversationSnapshot:
        """Read one conversation."""
        ...

    async def find_call(self, call_id: str) -> str | None:
        """The conversation id of the call tagged `call_id`, or None when the provider has no such call."""
        ...

    async def changed_conversations(self, started_after_unix: int, wanted: set[str]) -> Listing:
        """Marks of the conversations started after that time, by conversation id, listed until every `wanted`
        one was seen or the list ends: a few requests, however many calls are followed."""
        ...

    async def recording(self, conversation_id: str) -> bytes | None:
        """The call's recording, or None when the provider has none."""
        ...

    async def own_number(self) -> str | None:
        """The E.164 number the caller dials out from, or None when the provider does not say."""
        ...

    def check_webhook_header(self, secret: str | None, header: str | None) -> None:
        """Raise callcheck.errors.Unauthorized unless `header` is a well-formed, fresh signature header (the body
        unread: an unsigned or stale request is refused before its body is read)."""
        ...

    def verify_webhook(self, secret: str | None, header: str | None, body: bytes) -> None:
        """Raise callcheck.errors.Unauthorized unless `header` is a valid, fresh signature of `body`."""
        ...

    def decode_webhook(self, event: dict[str, Any]) -> WebhookEvent:
        """A verified webhook body in callcheck's words; unknown events are kind "other"."""
        ...

    def missing_setup_settings(self) -> list[str]:
        """The settings (names, never values) agent setup cannot run without, unset or blank; [] when it can."""
        ...

    async def setup_agent(self, options: AgentSetupOptions) -> SetupResult:
        """Create or update the caller agent so it is ready for callcheck (read it, send the one change it needs,
        nothing when it needs none); the result lists every change. Raises callcheck.errors' errors (NotFound for
        an unknown agent, Upstream* when the provider fails)."""
        ...

    async def doctor_checks(self, public_url: str | None) -> list[Check]:
        """Every set-up check of the provider, in the order they are reported (read-only requests): its settings,
        credentials, agent, number and webhooks, each with the fix when it fails. `public_url` is callcheck's
        public base URL (webhooks are checked against it; None: not set). Never raises for a broken set-up: each
        problem is a failed check, and a check depending on a failed one is skipped."""
        ...

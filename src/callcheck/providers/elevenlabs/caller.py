"""ElevenLabs as a `CallerProvider` (providers/base.py): its client and its pure wire functions behind the protocol.

Built per use from the settings and a client factory (`Services.client`), so the pure parts (`decode_webhook`,
`call_request`) work without the API settings and the settings are only required once something is sent. Agent
setup and the doctor need only the API key (they are how the rest gets set): they build their own client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from callcheck.config import Settings
from callcheck.errors import UpstreamHTTPError
from callcheck.providers.base import (
    AgentSetupOptions,
    Check,
    ConversationMark,
    ConversationSnapshot,
    Listing,
    PlacedCall,
    SetupResult,
    WebhookEvent,
)
from callcheck.providers.elevenlabs import listing, setup, webhooks
from callcheck.providers.elevenlabs.agent_profile import allowed_overrides, explain_refused_override
from callcheck.providers.elevenlabs.client import ElevenLabsClient
from callcheck.providers.elevenlabs.doctor import elevenlabs_checks
from callcheck.providers.elevenlabs.outbound import outbound_payload, placed_ids, seed_override, sent_override
from callcheck.providers.elevenlabs.snapshot import decode_webhook, snapshot_of
from callcheck.providers.elevenlabs.wire import conversation_ids_of, phone_number_of


class ElevenLabsCaller:
    """ElevenLabs' conversational agents placing calls over an imported Twilio number."""

    name = "ElevenLabs"
    signature_header = webhooks.SIGNATURE_HEADER

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        client: Callable[[], ElevenLabsClient] | None = None,
        *,
        on_sandbox: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        self._http = http
        # Called when an answer shows that "ElevenLabs" is callcheck's sandbox (the running callcheck notes it).
        self._on_sandbox = on_sandbox
        # Raises MissingSettings (names only) when the API settings are absent.
        self._client = client or self._settings_client
        self._agent_id = settings.elevenlabs_agent_id or ""
        self._phone_number_id = settings.elevenlabs_agent_phone_number_id or ""

    def _settings_client(self) -> ElevenLabsClient:
        self._settings.require_call_settings()
        key = self._settings.elevenlabs_api_key
        assert key is not None  # missing_call_settings names it otherwise
        return ElevenLabsClient(
            self._http, key.get_secret_value(), self._settings.elevenlabs_api_base, on_sandbox=self._on_sandbox
        )

    def _keyed_client(self) -> ElevenLabsClient:
        """A client with whatever API key is set (setup and the doctor need no more)."""
        key = self._settings.elevenlabs_api_key
        return ElevenLabsClient(self._http, key.get_secret_value() if key else "", self._settings.elevenlabs_api_base)

    def call_request(
        self, to_number: str, overrides: dict[str, Any], call_id: str, max_duration_s: float | None
    ) -> dict[str, Any]:
        """The outbound-call payload (contract §2), tagged with our call id."""
        return outbound_payload(
            self._agent_id, self._phone_number_id, to_number, overrides, call_id, max_duration_s=max_duration_s
        )

    def seed_overrides(self, prompt: str, first_message: str) -> dict[str, Any]:
        """The seed's conversation_config_override."""
        return seed_override(prompt, first_message)

    def sent_overrides(self, request: dict[str, Any]) -> dict[str, Any]:
        """The conversation_config_override a stored outbound payload carried."""
        return sent_override(request)

    async def place_call(self, request: dict[str, Any]) -> PlacedCall:
        """POST the outbound call once; a refused override is explained (naming `callcheck agent setup`)."""
        try:
            raw = await self._client().outbound_call(request)
        except UpstreamHTTPError as exc:
            explained = explain_refused_override(exc)
            if explained is exc:
                raise
            raise explained from exc
        conversation_id, call_sid = placed_ids(raw)
        return PlacedCall(conversation_id, call_sid, raw)

    async def allowed_overrides(self) -> set[str]:
        """The agent's per-call override permissions, as dotted paths."""
        return allowed_overrides(await self._client().get_agent(self._agent_id))

    async def conversation(self, conversation_id: str) -> ConversationSnapshot:
        """GET the conversation, read into a snapshot."""
        return snapshot_of(await self._client().get_conversation(conversation_id))

    async def find_call(self, call_id: str) -> str | None:
        """The newest conversation of the agent whose user_id is our call id (contract §4.2)."""
        page = await self._client().list_conversations(agent_id=self._agent_id, user_id=call_id)
        found = conversation_ids_of(page)
        return found[0] if found else None

    async def changed_conversations(self, started_after_unix: int, wanted: set[str]) -> Listing:
        """The agent's conversations list, page by page, until every wanted one was seen or the list ends."""
        client = self._client()
        marks: dict[str, ConversationMark] = {}
        cursor: str | None = None
        pages = 0
        while True:
            pages += 1
            page = await client.list_conversations(**listing.recent_query(self._agent_id, started_after_unix, cursor))
            marks.update(listing.marks_of(page))
            cursor = listing.next_cursor(page)
            if cursor is None or wanted.issubset(marks):
                return Listing(marks, pages)

    async def recording(self, conversation_id: str) -> bytes | None:
        """The call's MP3, or None when ElevenLabs has none."""
        return await self._client().get_audio(conversation_id)

    async def own_number(self) -> str | None:
        """The number of ELEVENLABS_AGENT_PHONE_NUMBER_ID, as ElevenLabs lists it."""
        return phone_number_of(await self._client().list_phone_numbers(), self._phone_number_id)

    def check_webhook_header(self, secret: str | None, header: str | None) -> None:
        """`ElevenLabs-Signature` well-formed and fresh, before the body is read (contract §5.2-5.3)."""
        webhooks.check_header(secret, header)

    def verify_webhook(self, secret: str | None, header: str | None, body: bytes) -> None:
        """HMAC check of `ElevenLabs-Signature` (contract §5.2-5.3)."""
        webhooks.verify(secret, header, body)

    def decode_webhook(self, event: dict[str, Any]) -> WebhookEvent:
        """A post-call webhook (contract §5.4) in our words."""
        return decode_webhook(event)

    def missing_setup_settings(self) -> list[str]:
        """ELEVENLABS_API_KEY, when it is unset or blank: setup needs nothing else."""
        key = self._settings.elevenlabs_api_key
        return [] if key and key.get_secret_value().strip() else ["ELEVENLABS_API_KEY"]

    async def setup_agent(self, options: AgentSetupOptions) -> SetupResult:
        """Ready the agent (the option's, else ELEVENLABS_AGENT_ID's; none: create one); the webhook URL defaults to
        CALLCHECK_PUBLIC_URL's."""
        return await setup.setup_agent(
            self._keyed_client(),
            agent_id=options.agent_id or self._settings.elevenlabs_agent_id,
            name=options.name,
            webhook_url=options.webhook_url or setup.webhook_url_for(self._settings.public_url),
            webhook_id=options.webhook_id,
            create_webhook=options.create_webhook,
            dry_run=options.dry_run,
        )

    async def doctor_checks(self, public_url: str | None) -> list[Check]:
        """Settings, API key, agent, phone number and post-call webhooks, against ElevenLabs (GET requests only)."""
        return await elevenlabs_checks(self._settings, self._http, public_url)

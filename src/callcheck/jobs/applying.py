"""Applying what is known of a call: a conversation read (a poll, a refresh) or a webhook, and its recording.

Plain async functions on the Services, used by the follower (jobs/tracking.py), by placing (jobs/placing.py: webhooks
that beat a call's answer) and by webhook receiving (jobs/webhooks.py). They import neither placing nor the
workflows, so those can import them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from callcheck.domain.evidence import Turn, journey_for
from callcheck.domain.lifecycle import CallState
from callcheck.errors import UpstreamError
from callcheck.providers import caller_for
from callcheck.providers.base import ConversationSnapshot, WebhookEvent
from callcheck.services import Services
from callcheck.store.files import private_dir
from callcheck.store.repo import CallRow, KeptWebhook
from callcheck.text import counted

log = logging.getLogger("callcheck.tracking")

# After a call_initiation_failure webhook the conversation is read before the call ends, so the call keeps the same
# metadata and analysis as a polled one. The read backs off like polling, and is capped: it runs inside the webhook
# request, which ElevenLabs waits on.
FINAL_READ_ATTEMPTS = 4
FINAL_READ_BUDGET_S = 8.0

# One writer at a time per call in this process: a webhook and a poll applying the same conversation at once both
# saw the old transcript (or no recording) and both told of the change (a "recording" event stored twice).
_call_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _call_lock(call_id: str) -> asyncio.Lock:
    lock = _call_locks.get(call_id)
    if lock is None:
        lock = _call_locks[call_id] = asyncio.Lock()
    return lock


async def apply_conversation(
    services: Services,
    call: CallRow,
    snapshot: ConversationSnapshot,
    *,
    just_read: bool = False,
    webhook: KeptWebhook | None = None,
) -> CallState:
    """Store what a conversation snapshot says about the call and move its state; the call's state afterwards.

    A snapshot without a usable transcript (a webhook that left it out) never replaces the stored one: the journey
    is then figured from the transcript already kept.

    `just_read`: the caller read `call` right before (no await since): unless another writer of this process holds
    the call's lock, it is read again only then (a writer of another process is not kept out by the lock either way;
    the state move is conditional on the stored state). `webhook`: the delivery this snapshot comes from, kept in the
    write that ends the call (Store.move_call; AlreadyKept when it was kept meanwhile).
    """
    lock = _call_lock(call.id)
    contended = lock.locked()
    async with lock:
        if contended or not just_read:
            call = await services.store.get_call(call.id) or call  # as it is now, not as the caller read it
        return await _apply_conversation(services, call, snapshot, webhook)


async def _apply_conversation(
    services: Services, call: CallRow, snapshot: ConversationSnapshot, webhook: KeptWebhook | None = None
) -> CallState:
    changes, told = _changes(call, snapshot)
    target = snapshot.state
    extra = _failure_error(call, snapshot)
    moves = target is not None and target != call.state
    # Events in the order a person reads them: a call is in progress before its first words, and its last words
    # come before its end.
    if moves and target is not None and target.terminal:
        # The usual end (a post-call webhook, a final poll): what the conversation says and the final state in one
        # write, the transcript told before the end. Refused (the call ended meanwhile), nothing was written.
        moved = await services.store.move_call(
            call.id, target, snapshot.status_note, told_first=told, webhook=webhook, **changes, **extra
        )
        if moved:
            services.notifier.publish(call.id)
            return target
        moves = False
    if moves and target is not None:
        await services.store.move_call(call.id, target, snapshot.status_note, **extra)
    # A record of a call in progress is written only while the call is: read before a webhook ended the call (a
    # watched call's poll, say), it would otherwise replace the end's transcript and facts with older ones. A final
    # record may complete a call already final (a webhook that left the transcript out).
    final_record = target is not None and target.terminal
    await services.store.update_call(call.id, told, while_live=not final_record, **changes)
    services.notifier.publish(call.id)
    fresh = await services.store.get_call(call.id)
    assert fresh is not None
    return fresh.state


def _changes(call: CallRow, snapshot: ConversationSnapshot) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The call's columns a snapshot updates, and the event telling of new turns (None when there are none)."""
    facts = snapshot.facts
    turns = snapshot.turns if snapshot.has_transcript else _stored_turns(call)
    journey = journey_for(turns, snapshot.analysis, facts)
    changes: dict[str, Any] = {"facts": facts.model_dump(), "journey": journey.model_dump()}
    told = None
    if snapshot.has_transcript:
        transcript = [t.model_dump() for t in turns]
        changes["transcript"] = transcript
        if len(transcript) > len(call.transcript or []):
            told = ("transcript", counted(len(transcript), "turn"))  # stored turns: the event stream resumes by it
    if snapshot.analysis is not None:
        changes["analysis"] = snapshot.analysis.model_dump()
    if facts.call_sid and not call.call_sid:
        changes["call_sid"] = facts.call_sid
    return changes, told


def _failure_error(call: CallRow, snapshot: ConversationSnapshot) -> dict[str, Any]:
    """`{"error": ...}` for a snapshot that fails the call with something to say, else nothing."""
    facts = snapshot.facts
    if snapshot.state != CallState.FAILED:
        return {}
    if snapshot.setup_error:
        return {"error": snapshot.setup_error}
    if (facts.error_reason or facts.error_code is not None) and not call.error:
        return {"error": _upstream_error(snapshot)}
    return {}


def _stored_turns(call: CallRow) -> list[Turn]:
    return [Turn.model_validate(t) for t in call.transcript or [] if isinstance(t, dict)]


def _upstream_error(snapshot: ConversationSnapshot) -> str:
    facts = snapshot.facts
    code = f" {facts.error_code}" if facts.error_code is not None else ""
    return f"The conversation failed upstream (error{code}): {facts.error_reason or 'no reason given'}."


def recordings_dir(services: Services) -> Path:
    """Where recordings are kept."""
    return services.settings.data_dir / "recordings"


def _file_digest(path: str) -> str | None:
    """SHA-256 of a file's bytes, or None when there is no such file."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except FileNotFoundError:
        return None


async def save_recording(services: Services, call_id: str, audio: bytes) -> bool:
    """Keep a call's MP3 on disk (written whole, then renamed, so a reader never sees half a file).

    False, changing nothing, when the call already keeps these very bytes: ElevenLabs may send the same audio
    again (a re-sent webhook differs only in its event_timestamp), and the audio endpoint serves it once more.
    """
    async with _call_lock(call_id):
        return await _save_recording(services, call_id, audio)


async def _save_recording(services: Services, call_id: str, audio: bytes) -> bool:
    call = await services.store.get_call(call_id)
    if call is not None and call.recording_path:
        kept = await asyncio.to_thread(_file_digest, call.recording_path)
        if kept == hashlib.sha256(audio).hexdigest():
            return False
    folder = recordings_dir(services)
    path = folder / f"{call_id}.mp3"

    def write() -> None:
        private_dir(folder)  # 0700; mkstemp makes the file 0600
        # A temp name of its own: two deliveries of one call's audio at once must not write the same file.
        fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{call_id}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(audio)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise

    await asyncio.to_thread(write)
    await services.store.update_call(call_id, ("recording", f"{len(audio)} bytes"), recording_path=str(path))
    services.notifier.publish(call_id)
    return True


async def fetch_recording(services: Services, call_id: str) -> bool:
    """Download the recording of a finished call if it has one and we have none; True when one is kept."""
    call = await services.store.get_call(call_id)
    if call is None or not call.conversation_id:
        return False
    if call.recording_path:
        exists: bool = await asyncio.to_thread(os.path.exists, call.recording_path)
        if exists:
            return True
    if not call.state.may_have_recording:
        return False
    if not await _has_audio(services, call):
        return False
    try:
        audio = await caller_for(services).recording(call.conversation_id)
    except UpstreamError as exc:
        log.warning("recording of call %s not fetched: %s", call_id, exc.message)
        return False
    if not audio:
        return False
    await save_recording(services, call_id, audio)
    return True


async def _has_audio(services: Services, call: CallRow) -> bool:
    """Whether ElevenLabs says the call has a recording: the last reading's `has_audio`, read afresh when that one
    said no (it may predate the end of the call). The audio endpoint is only asked when it does."""
    if (call.facts or {}).get("has_audio") is True:
        return True
    assert call.conversation_id is not None
    try:
        snapshot = await caller_for(services).conversation(call.conversation_id)
    except UpstreamError as exc:
        log.warning("recording of call %s not looked for: %s", call.id, exc.message)
        return False
    return snapshot.has_audio


# -- webhooks ------------------------------------------------------------------------------------------------


async def apply_webhook(services: Services, event: WebhookEvent) -> str | None:
    """Apply a verified, decoded webhook event to its call; the call id, or None when the call is unknown."""
    if not event.conversation_id:
        return None
    call = await services.store.find_call_by_conversation(event.conversation_id)
    if call is None:
        return None
    await apply_webhook_to(services, call, event)
    return call.id


async def apply_webhook_to(
    services: Services, call: CallRow, event: WebhookEvent, webhook: KeptWebhook | None = None
) -> CallState | None:
    """Apply a verified, decoded webhook event to `call` (just read); the call's state afterwards when the event
    decided it (None: an audio event, or an event left to polling). `webhook`: the delivery, kept in the write that
    ends the call when the event ends it there (its `kept` tells; see Store.move_call)."""
    assert event.conversation_id is not None
    if event.kind == "transcript" and event.snapshot is not None and not call.state.terminal:
        snapshot = event.snapshot
        if not snapshot.has_transcript:
            # The workspace's webhooks leave the transcript out (or send it in another format): read the
            # conversation instead, never store an empty transcript or end the call on one. Unread, the call is
            # left to polling, which reads it too.
            fetched = await final_conversation(services, event.conversation_id)
            if fetched is None or not fetched.has_transcript:
                log.warning("post-call webhook for call %s had no transcript; left to polling", call.id)
                return None
            return await apply_conversation(services, call, fetched, webhook=webhook)
        return await apply_conversation(services, call, snapshot, just_read=True, webhook=webhook)
    if event.kind == "audio":
        if event.audio is None:
            log.warning("audio webhook for call %s carried no base64 audio", call.id)
        else:
            await save_recording(services, call.id, event.audio)
        return None
    if event.kind == "initiation_failure" and not call.state.terminal:
        # The event carries no metadata or analysis of the conversation: read it, so the call ends with the same
        # record as a polled one (and a suite judges both alike). Only when it cannot be read does the event's
        # own reason decide.
        conversation = await final_conversation(services, event.conversation_id)
        if conversation is not None:
            state = await apply_conversation(services, call, conversation)
            if state.terminal:
                return state
        target = event.failure_state or CallState.FAILED
        moved = await services.store.move_call(call.id, target, f"call initiation failed: {event.failure_reason}")
        services.notifier.publish(call.id)
        # Not moved: the call ended meanwhile, and whoever ended it woke its workflow.
        return target if moved else None
    return call.state


async def final_conversation(services: Services, conversation_id: str) -> ConversationSnapshot | None:
    """The conversation once ElevenLabs has finished it, read with polling's backoff, capped; None if not seen."""
    delay = services.settings.poll_initial_s
    started = time.monotonic()
    for attempt in range(1, FINAL_READ_ATTEMPTS + 1):
        try:
            snapshot = await caller_for(services).conversation(conversation_id)
        except UpstreamError as exc:
            log.warning("conversation %s not read (attempt %d): %s", conversation_id, attempt, exc.message)
        else:
            if snapshot.final:
                return snapshot
        if attempt == FINAL_READ_ATTEMPTS or time.monotonic() - started + delay > FINAL_READ_BUDGET_S:
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, services.settings.poll_max_s)
    return None


async def apply_stored_webhooks(services: Services, call: CallRow) -> None:
    """Apply webhook events that arrived before this call's conversation id was known."""
    if not call.conversation_id:
        return
    payloads = await services.store.unmatched_webhooks(call.conversation_id)
    if not payloads:
        return  # the usual case: nothing to apply, nothing to write
    for payload in payloads:
        if isinstance(payload, dict):
            await apply_webhook(services, caller_for(services).decode_webhook(payload))
    await services.store.match_webhooks(call.conversation_id, call.id)


async def refresh(services: Services, call_id: str) -> CallState | None:
    """Fetch a placed call's conversation and apply it (the batched poller saw it change); its state afterwards, or
    None when ElevenLabs could not be read (the poller then tries again)."""
    call = await services.store.get_call(call_id)
    if call is None:
        return None
    if call.state.terminal or not call.conversation_id:
        return call.state
    try:
        snapshot = await caller_for(services).conversation(call.conversation_id)
    except UpstreamError as exc:
        log.warning("call %s not fetched: %s", call_id, exc.message)
        return None
    return await apply_conversation(services, call, snapshot)


async def apply_kept_webhooks(services: Services, call: str | CallRow) -> None:
    """Apply the webhooks that arrived for a call (its id, or its row just read) before its conversation id was
    known."""
    row = await services.store.get_call(call) if isinstance(call, str) else call
    if row is not None:
        await apply_stored_webhooks(services, row)

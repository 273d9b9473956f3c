"""A local, simulated ElevenLabs Agents API for callcheck's demo, users' CI, and our own tests.

It speaks the subset of the API callcheck uses (shared/contracts/elevenlabs.md §2, §4, §5, §6, §8, §9)
over real HTTP; magic destination numbers choose what a call does (`MAGIC_NUMBERS`, docs/sandbox.md).
Nothing here places a real call: every answer carries the header `x-callcheck-sandbox: 1`, the default
agent is named "callcheck sandbox caller", and recordings are tagged silence.

Public surface::

    SandboxConfig, create_sandbox_app(config), SandboxServer(config, host, port)
    SteppedClock  # a clock tests move by hand: SandboxConfig(clock=SteppedClock())
    HeldClock  # the real clock, which a test can stop and start again (create_app(settings, sandbox_clock=...))
    run_sandbox_forever(config, host, port)
    Outcome, MAGIC_NUMBERS, NUMBER_* constants, delayed_answer_number(seconds), outcome_for(number)
    sign(secret, body, timestamp)  # the webhook signer, for tests that forge webhooks
"""

from callcheck.providers.elevenlabs.sandbox.app import SANDBOX_HEADER, create_sandbox_app
from callcheck.providers.elevenlabs.sandbox.config import (
    MAGIC_NUMBERS,
    NUMBER_BUSY,
    NUMBER_COMPLETED,
    NUMBER_HTTP_429,
    NUMBER_HTTP_500,
    NUMBER_IVR,
    NUMBER_IVR_DEAD_END,
    NUMBER_KEYPAD_FAILS,
    NUMBER_NO_ANSWER,
    NUMBER_NO_CONVERSATION_ID,
    NUMBER_NO_TRANSCRIPT_WEBHOOK,
    NUMBER_NOT_SUCCESS,
    NUMBER_NOT_UNDERSTOOD,
    NUMBER_REFUSES_OVERRIDES,
    NUMBER_TRANSFERRED,
    NUMBER_VANISHES,
    NUMBER_VOICEMAIL,
    HeldClock,
    Outcome,
    SandboxConfig,
    SteppedClock,
    delayed_answer_number,
    outcome_for,
)
from callcheck.providers.elevenlabs.sandbox.server import SandboxServer, run_sandbox_forever
from callcheck.providers.elevenlabs.sandbox.state import SANDBOX_AGENT_NAME
from callcheck.providers.elevenlabs.sandbox.webhooks import SIGNATURE_HEADER, sign

__all__ = [
    "MAGIC_NUMBERS",
    "NUMBER_BUSY",
    "NUMBER_COMPLETED",
    "NUMBER_HTTP_429",
    "NUMBER_HTTP_500",
    "NUMBER_IVR",
    "NUMBER_IVR_DEAD_END",
    "NUMBER_KEYPAD_FAILS",
    "NUMBER_NOT_SUCCESS",
    "NUMBER_NOT_UNDERSTOOD",
    "NUMBER_NO_ANSWER",
    "NUMBER_NO_CONVERSATION_ID",
    "NUMBER_NO_TRANSCRIPT_WEBHOOK",
    "NUMBER_REFUSES_OVERRIDES",
    "NUMBER_TRANSFERRED",
    "NUMBER_VANISHES",
    "NUMBER_VOICEMAIL",
    "SANDBOX_AGENT_NAME",
    "SANDBOX_HEADER",
    "SIGNATURE_HEADER",
    "HeldClock",
    "Outcome",
    "SandboxConfig",
    "SandboxServer",
    "SteppedClock",
    "create_sandbox_app",
    "delayed_answer_number",
    "outcome_for",
    "run_sandbox_forever",
    "sign",
]

"""The fields each store write takes, by name and type: `**fields: Unpack[...]` instead of `**values: Any`.

A key left out is not written; a key given as None writes NULL. mypy checks every caller's names and types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Required, TypedDict

from callcheck.domain.lifecycle import CallErrorKind, RunState


class NewCall(TypedDict, total=False):
    """A call about to be stored (Store.create_call)."""

    id: str
    state: Required[str]  # a CallState's value: dialing or queued
    origin: Required[str]  # api | web | suite | monitor
    to_number: Required[str]
    business_description: Required[str]
    scenario: Required[str]
    prompt: Required[str]
    first_message: Required[str]
    request_payload: Required[dict[str, Any]]
    simulated: bool
    context_id: str | None
    run_id: str | None
    idempotency_key: str | None
    timeout_s: float | None
    placed_by: str | None
    token_name: str | None
    created_at: datetime


class CallChanges(TypedDict, total=False):
    """Fields of a stored call that change after it is stored (Store.update_call, Store.move_call); not its state."""

    simulated: bool
    upstream_response: Any
    error: str | None
    error_kind: CallErrorKind | None  # an error given without a kind keeps the stored kind; error=None clears it
    conversation_id: str | None
    call_sid: str | None
    transcript: list[dict[str, Any]] | None
    analysis: dict[str, Any] | None
    facts: dict[str, Any] | None
    journey: dict[str, Any] | None
    recording_path: str | None
    idempotency_key: str | None
    ended_at: datetime | None


class NewRun(TypedDict, total=False):
    """A suite run about to be stored (RunStore.create_run); it starts running."""

    id: str
    name: Required[str]
    source_name: Required[str]
    suite_text: Required[str]
    only: list[str] | None
    concurrency: Required[int]
    rate_per_min: float | None
    simulated: bool
    owner: str | None
    token_name: str | None
    monitor_id: str | None
    monitor_slot: int | None


class RunChanges(TypedDict, total=False):
    """Fields of a stored run that change (RunStore.update_run)."""

    state: RunState
    finished_at: datetime | None
    report: dict[str, Any] | None
    exit_code: int | None
    error: str | None
    simulated: bool
    last_placed_at: float | None
    owner: str | None


class NewMonitor(TypedDict, total=False):
    """A monitor about to be stored (MonitorStore.create); it starts pending, with no failures counted."""

    id: str
    name: Required[str]
    suite_text: Required[str]
    source_name: Required[str]
    suite_name: Required[str]
    calls_per_run: Required[int]
    every_s: int | None
    cron: str | None
    timezone: Required[str]
    concurrency: Required[int]
    alert_after: Required[int]
    channels: Required[list[dict[str, str]]]
    paused: bool
    last_slot: int | None


class MonitorChanges(TypedDict, total=False):
    """Fields of a stored monitor that a change sets (MonitorStore.update)."""

    name: str
    suite_text: str
    source_name: str
    suite_name: str
    calls_per_run: int
    every_s: int | None
    cron: str | None
    timezone: str
    concurrency: int
    alert_after: int
    channels: list[dict[str, str]]
    paused: bool
    last_slot: int | None
    run_requested_at: int | None


class NewDelivery(TypedDict):
    """An alert delivery still to make (MonitorStore.add_delivery)."""

    kind: str  # alert | recovery | test
    status: str  # the monitor's status it tells of
    channel: str  # webhook | slack | email
    target: str
    payload: dict[str, Any]

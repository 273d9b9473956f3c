"""ElevenLabs' wire names stay in providers/elevenlabs: the rest of callcheck reads our own types (snapshots,
webhook events, tool kinds), so a second caller provider could sit beside it. Checked on string literals (not
comments or docstrings) of every module outside the provider."""

from __future__ import annotations

import ast
from pathlib import Path

import callcheck

PACKAGE = Path(callcheck.__file__).parent
PROVIDER = PACKAGE / "providers" / "elevenlabs"
WIRE_NAMES = {
    "conversation_initiation_client_data",
    "conversation_config_override",
    "post_call_transcription",
    "post_call_audio",
    "call_initiation_failure",
    "tool_results",
    "params_as_json",
    "dtmf_tones",
    "evaluation_criteria_results",
    "data_collection_results",
    "transcript_summary",
    "callSid",
    "in-progress",
    "full_audio",
    "cost_fiat",
    "play_keypad_touch_tone",
    "transfer_to_number",
    "call_start_after_unix",
    "message_count",
    "source_medium",
    "termination_reason",
    "call_duration_secs",
    "dynamic_variables",
    "/v1/convai",
    "ElevenLabs-Signature",
}
# Modules of jobs/ and domain/ still importing the ElevenLabs provider itself rather than `providers.caller_for` and
# the protocol's types (docs/providers.md, "Not behind the protocol yet"). Only ever shrinks.
STILL_IMPORTING_THE_PROVIDER: set[str] = set()
# Modules of api/ still importing the ElevenLabs provider (a wire function) rather than reaching it through jobs/ or the
# protocol. Only ever shrinks: the webhook route left it (its signature header and check come through the provider).
API_STILL_IMPORTING_THE_PROVIDER = {"api/calls.py"}


def literals(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_elevenlabs_wire_name_outside_its_provider() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        if PROVIDER in path.parents:
            continue
        for line, text in literals(ast.parse(path.read_text(encoding="utf-8"))):
            found += [f"{path.relative_to(PACKAGE)}:{line}: {name}" for name in WIRE_NAMES if name in text]
    # The doctor's messages name the tools a person must enable (a sentence for a person, not a field read).
    found = [f for f in found if not f.startswith("doctor.py")]
    assert not found, "\n".join(found)


def test_jobs_and_domain_reach_the_provider_through_its_protocol() -> None:
    found = []
    for package in ("jobs", "domain"):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            name = str(path.relative_to(PACKAGE))
            tree = ast.parse(path.read_text(encoding="utf-8"))
            modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
            modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
            if name not in STILL_IMPORTING_THE_PROVIDER:
                found += [f"{name}: {m}" for m in modules if m.startswith("callcheck.providers.elevenlabs")]
    assert not found, "\n".join(found)


def test_the_api_reaches_the_provider_only_through_jobs_and_the_protocol() -> None:
    found = []
    for path in sorted((PACKAGE / "api").rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        if name in API_STILL_IMPORTING_THE_PROVIDER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        found += [f"{name}: {m}" for m in modules if m.startswith("callcheck.providers.elevenlabs")]
    assert not found, "\n".join(found)

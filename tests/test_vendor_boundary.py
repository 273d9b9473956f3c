"""ElevenLabs stays in providers/elevenlabs: the rest of callcheck reads our own types (snapshots, webhook events,
tool kinds, setup results, doctor checks), so a second caller provider could sit beside it.

Two checks on every module outside the provider: its string literals (not comments or docstrings) carry no
ElevenLabs wire name, and it does not import the provider's modules (at its top, lazily, or under TYPE_CHECKING),
except in the one place that picks the provider and the commands that start ElevenLabs' sandbox."""

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
PROVIDER_MODULE = "callcheck.providers.elevenlabs"
# The modules outside the provider that may name it, and why: nothing else chooses or builds it.
MAY_NAME_THE_PROVIDER = {
    "providers/__init__.py": "caller_for / caller_from_settings: the one place that picks the caller provider",
    "runtime.py": "the composition root starts ElevenLabs' sandbox for `serve --sandbox`",
    "cli/sandbox.py": "`callcheck sandbox` runs ElevenLabs' sandbox",
    "cli/serve.py": "leaves the in-process sandbox's log lines out of serve's",
}
# Modules still naming the provider rather than going through `providers.caller_for` and the protocol's types
# (docs/providers.md, "Not behind the protocol yet"). Only ever shrinks: a listed module that no longer names it fails
# the test below until it leaves the list.
STILL_NAMING_THE_PROVIDER: dict[str, str] = {}


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
    assert not found, "\n".join(found)


def provider_names(source: str, path: Path) -> list[str]:
    """Every way the module at `path` (with this source) names the provider's modules: imports (top-level, lazy,
    TYPE_CHECKING; relative ones made absolute) and string literals spelling the module path (importlib, say)."""
    tree = ast.parse(source)
    module = ".".join(("callcheck", *path.relative_to(PACKAGE).with_suffix("").parts))
    package = module.removesuffix(".__init__") if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    found += [text for _, text in literals(tree)]
    return sorted({name for name in found if PROVIDER_MODULE in name})


def naming_the_provider() -> dict[str, list[str]]:
    """Module (relative to the package) -> how it names the provider, for every module outside the provider."""
    named = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if PROVIDER not in path.parents and (names := provider_names(path.read_text(encoding="utf-8"), path)):
            named[str(path.relative_to(PACKAGE))] = names
    return named


def test_only_the_provider_choice_names_the_elevenlabs_provider() -> None:
    """jobs/, domain/, api/, web/, the doctor, the CLI's agent and doctor commands... reach the provider through
    `providers.caller_for` and the types of providers/base.py."""
    allowed = set(MAY_NAME_THE_PROVIDER) | set(STILL_NAMING_THE_PROVIDER)
    named = naming_the_provider()
    found = [f"{module}: {', '.join(names)}" for module, names in named.items() if module not in allowed]
    assert not found, "\n".join(found)


def test_the_list_of_modules_still_naming_the_provider_only_shrinks() -> None:
    gone = set(STILL_NAMING_THE_PROVIDER) - set(naming_the_provider())
    assert not gone, f"no longer naming the provider: remove {sorted(gone)} from STILL_NAMING_THE_PROVIDER"


def test_the_boundary_check_sees_imports_of_every_kind() -> None:
    """The check itself: a lazy import, a TYPE_CHECKING one, a relative one and a module path in a string all count;
    the provider choice and the protocol's types do not."""
    placed = PACKAGE / "api" / "probe.py"  # as if it were an api module (for its relative imports)
    examples = {
        "def f() -> None:\n    from callcheck.providers.elevenlabs.client import ElevenLabsClient\n": True,
        "if TYPE_CHECKING:\n    import callcheck.providers.elevenlabs.caller\n": True,
        "from ..providers.elevenlabs import setup\n": True,
        "from ..providers import elevenlabs\n": True,
        "import importlib\nm = importlib.import_module('callcheck.providers.elevenlabs.doctor')\n": True,
        "from callcheck.providers import caller_for\nfrom callcheck.providers.base import Check\n": False,
        "from ..providers import caller_for\n": False,
    }
    for source, names in examples.items():
        assert bool(provider_names(source, placed)) is names, source

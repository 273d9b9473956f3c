"""The layering of docs/architecture.md, kept true by reading every module's imports (an AST walk, no import).

Counted: every `import` and `from ... import` in a module, at its top or inside a function (a lazy import is still a
dependency). Not counted: imports under `if TYPE_CHECKING:`, which exist only for the type checker.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "callcheck"

# The units of the layering: each package of src/callcheck, and each top-level module. For each, the units it may
# import (docs/architecture.md draws the same table). A new top-level module or package needs a row here.
LOW = {"errors", "text"}  # leaves: anything may import them; they import no other unit
EDGE = {"edge", "presenters"}  # below both api/ and web/, which never import each other
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "text": set(),
    "notifier": set(),
    "domain": LOW,
    "config": LOW | {"domain"},
    "store": LOW | {"domain"},
    "providers": LOW | {"domain", "config"},
    "reports": LOW | {"domain"},
    "doctor": LOW | {"domain", "config", "providers", "store"},
    "services": LOW | {"domain", "config", "providers", "store", "notifier", "doctor"},
    "jobs": LOW | {"domain", "config", "providers", "store", "notifier", "reports", "services"},
    # The HTTP edge: what the API and the pages share (the services dependency, guards, body reading, errors) and
    # the presenters (stored objects as the models the API answers); then the API and the pages, side by side.
    "edge": LOW | {"domain", "config", "providers", "store", "notifier", "reports", "services", "doctor"},
    "presenters": LOW | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor"},
    "api": LOW | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor"} | EDGE,
    "web": LOW | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor"} | EDGE,
    # The composition root builds the services; create_app builds the web application on it.
    "runtime": LOW
    | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor", "api"}
    | EDGE,
    "app": LOW
    | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor", "api", "web"}
    | EDGE
    | {"runtime"},
    "cli": LOW
    | {"domain", "config", "providers", "store", "notifier", "reports", "services", "jobs", "doctor", "api", "web"}
    | EDGE
    | {"runtime", "app"},
    "__main__": {"cli"},
}

# Third-party libraries that mean I/O or a framework: domain/ is pure logic and imports none of them.
NOT_IN_DOMAIN = ("httpx", "sqlalchemy", "alembic", "dbos", "fastapi", "starlette", "uvicorn", "callcheck.config")

# Known breaches being removed on another branch, each as (unit or module path, what it imports). Empty since the
# LLM client left domain/ for providers/llm.py (issue 11, point 2). The test below fails once a listed breach is gone,
# so the list cannot outlive it.
KNOWN_BREACHES: set[tuple[str, str]] = set()


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                hidden.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return hidden


def import_statements(module: str, path: Path, *, types: bool = False) -> list[tuple[str, list[str] | None]]:
    """Every import statement `module` runs (TYPE_CHECKING-only ones left out unless `types`), relative ones made
    absolute: `(name, None)` for each name of an `import`, `(base, names)` for a `from base import names`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = set() if types else _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str] | None]] = []
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.append((base, [alias.name for alias in node.names]))
    return found


def imported_names(module: str, path: Path, *, types: bool = False) -> list[str]:
    """Every module `module` imports at run time (absolute dotted names; `from a import b` gives `a` and `a.b`)."""
    names: list[str] = []
    for base, members in import_statements(module, path, types=types):
        names.append(base)
        names += [f"{base}.{member}" for member in members or []]
    return names


def unit_of(name: str) -> str | None:
    """The unit a callcheck module belongs to (`callcheck.jobs.runs` -> `jobs`); None outside callcheck."""
    parts = name.split(".")
    if parts[0] != "callcheck" or len(parts) < 2:
        return None
    unit = parts[1]
    exists = (SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file()
    return unit if exists else None  # `from callcheck import __version__` names no unit


def unit_graph(*, types: bool = False) -> dict[str, dict[str, set[str]]]:
    """unit -> unit it imports -> the modules that do (with `types`, counting TYPE_CHECKING-only imports too)."""
    graph: dict[str, dict[str, set[str]]] = {}
    for module, path in _modules():
        source = unit_of(module)
        if source is None:
            continue
        graph.setdefault(source, {})
        for name in imported_names(module, path, types=types):
            target = unit_of(name)
            if target is not None and target != source:
                graph[source].setdefault(target, set()).add(module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def imported_modules(module: str, path: Path, modules: set[str], *, types: bool = False) -> set[str]:
    """The callcheck modules `module` imports at run time. `from a import b` is module `a.b` when that is a module
    (a submodule: its package's `__init__` runs first, but that is Python's doing, no dependency of ours), else
    module `a`; `import a.b.c` is the longest of `a.b.c`, `a.b`, `a` that is a module."""
    names: list[str] = []
    for base, members in import_statements(module, path, types=types):
        if members is None:
            names.append(base)
        else:
            names += [f"{base}.{member}" if f"{base}.{member}" in modules else base for member in members]
    found: set[str] = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("callcheck.") and name != module:
            found.add(name)
    return found


def module_graph(*, types: bool = False) -> dict[str, set[str]]:
    """callcheck module -> the callcheck modules it imports (lazy imports count; TYPE_CHECKING ones only with
    `types`)."""
    paths = dict(_modules())
    return {module: imported_modules(module, path, set(paths), types=types) for module, path in paths.items()}


def _edges_without_known_breaches() -> dict[str, set[str]]:
    return {
        source: {target for target in targets if (source, target) not in KNOWN_BREACHES}
        for source, targets in unit_graph().items()
    }


def test_every_unit_has_a_row_in_the_layering() -> None:
    assert set(unit_graph()) <= set(ALLOWED), "add the new module or package to ALLOWED and docs/architecture.md"


def test_no_import_cycles_between_units() -> None:
    assert _cycles(_edges_without_known_breaches()) == []


def test_no_import_cycles_between_modules() -> None:
    """No two modules import each other, not even lazily (inside a function) or through others: each thing has one
    place, and a module's dependencies are all below it. Only `if TYPE_CHECKING:` imports are exempt."""
    assert _cycles(module_graph()) == []


def test_type_only_imports_keep_the_layering_too() -> None:
    """Even the imports that exist only for the type checker go downwards: a layer that needs a type of one above
    it says what it needs as a Protocol of its own (`services.CallTracker`, `providers.Host`)."""
    breaches = [
        f"{source} imports {target} for its types (in {', '.join(sorted(modules))})"
        for source, targets in unit_graph(types=True).items()
        for target, modules in targets.items()
        if target not in ALLOWED.get(source, set())
    ]
    assert breaches == []
    assert _cycles(module_graph(types=True)) == []


def test_each_unit_imports_only_what_its_layer_may() -> None:
    breaches = [
        f"{source} imports {target} (in {', '.join(sorted(modules))})"
        for source, targets in unit_graph().items()
        for target, modules in targets.items()
        if target not in ALLOWED.get(source, set()) and (source, target) not in KNOWN_BREACHES
    ]
    assert breaches == []


def _domain_io_imports() -> set[tuple[str, str]]:
    found = set()
    for module, path in _modules():
        if not module.startswith("callcheck.domain"):
            continue
        for name in imported_names(module, path):
            for banned in NOT_IN_DOMAIN:
                if name == banned or name.startswith(banned + "."):
                    found.add((str(path.relative_to(SRC)), banned))
    return found


def test_domain_does_no_io_and_reads_no_settings() -> None:
    assert _domain_io_imports() - KNOWN_BREACHES == set()


def test_known_breaches_are_still_real() -> None:
    """A breach fixed elsewhere must leave KNOWN_BREACHES too, so the rules above cover it again."""
    graph = unit_graph()
    real = _domain_io_imports() | {(s, t) for s, targets in graph.items() for t in targets}
    assert KNOWN_BREACHES - real == set()


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("callcheck.jobs.tracking", "callcheck.jobs.runs"),
        ("callcheck.jobs.placing", "callcheck.jobs.tracking"),
        ("callcheck.jobs.applying", "callcheck.jobs.placing"),
        ("callcheck.jobs.workflows", "callcheck.jobs.tracking"),
        ("callcheck.providers", "callcheck.services"),
    ],
)
def test_the_module_cycles_issue_11_named_stay_broken(module: str, forbidden: str) -> None:
    """jobs/: runs follow calls (runs -> tracking), the follower places calls (tracking -> placing), placing applies
    webhooks that beat its answer (placing -> applying); the DBOS plumbing and `caller_for` import none of them."""
    graph = module_graph()
    assert module in graph
    assert forbidden not in graph[module]


def test_the_module_walk_counts_submodules_not_their_package() -> None:
    paths = dict(_modules())
    app = "callcheck.providers.elevenlabs.sandbox.app"  # `from ...sandbox import routes`: the submodule routes
    assert imported_modules(app, paths[app], set(paths)) >= {"callcheck.providers.elevenlabs.sandbox.routes"}
    assert "callcheck.providers.elevenlabs.sandbox" not in module_graph()[app]
    # The graph has the edges it should: a run starts its calls' workflows; recovery builds the Tracker over both.
    assert "callcheck.jobs.tracking" in module_graph()["callcheck.jobs.runs"]
    assert {"callcheck.jobs.runs", "callcheck.jobs.tracking"} <= module_graph()["callcheck.jobs.recovery"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_every_dbos_function_has_a_name_of_its_own() -> None:
    """DBOS records a workflow or step by its name, the function's qualified name unless `name=` is given: every
    one is named, so moving a function between modules never orphans the workflows recorded by an older version."""
    unnamed = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                target = call.func if call is not None else deco
                if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)):
                    continue
                if target.value.id == "DBOS" and target.attr in {"workflow", "step", "transaction"}:
                    if call is None or not any(k.arg == "name" for k in call.keywords):
                        unnamed.append(f"{module}.{node.name}")
    assert unnamed == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("callcheck.edge.errors", "callcheck.web"),
        ("callcheck.services", "callcheck.jobs"),
        ("callcheck.cli.run", "callcheck.cli"),
    ],
)
def test_the_cycles_issue_11_named_stay_broken(module: str, expected: str) -> None:
    path = dict(_modules())[module]
    names = imported_names(module, path)
    if module == "callcheck.cli.run":  # a command module never imports the package that registers it
        assert expected not in names
    else:
        assert not [n for n in names if n == expected or n.startswith(expected + ".")]


def test_the_pages_and_the_api_import_neither_the_other() -> None:
    """web/ and api/ are two edges side by side: what both need lives in edge/ and presenters/ (issue 11)."""
    assert "api" not in ALLOWED["web"] and "web" not in ALLOWED["api"]
    crossing = [
        f"{module} imports {name}"
        for module, path in _modules()
        for name in imported_names(module, path)
        if (module.startswith("callcheck.web") and (name == "callcheck.api" or name.startswith("callcheck.api.")))
        or (module.startswith("callcheck.api") and (name == "callcheck.web" or name.startswith("callcheck.web.")))
    ]
    assert crossing == []


def test_the_walk_sees_lazy_imports_and_skips_type_only_ones() -> None:
    """The checks above can fail: a function-level import counts, an `if TYPE_CHECKING:` one does not."""
    path = dict(_modules())["callcheck.cli.run"]
    names = imported_names("callcheck.cli.run", path)
    assert "callcheck.jobs.runs" in names  # imported inside the command that runs a suite
    assert "callcheck.services" not in names  # only under TYPE_CHECKING there
    assert unit_of("callcheck.jobs.runs") == "jobs" and unit_of("callcheck.__version__") is None
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

"""domain/ is pure logic: it imports no HTTP client, no settings, no store and no provider (issue #11). Checked
on every import statement of every domain module, deferred ones inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import callcheck

DOMAIN = Path(callcheck.__file__).parent / "domain"
FORBIDDEN = ("httpx", "callcheck.config", "callcheck.store", "callcheck.providers", "callcheck.jobs", "sqlalchemy")


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
    return names


def test_domain_imports_no_io() -> None:
    found = [
        f"{path.relative_to(DOMAIN.parent)}:{line}: {name}"
        for path in sorted(DOMAIN.rglob("*.py"))
        for line, name in imported(ast.parse(path.read_text(encoding="utf-8")))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    assert not found, "\n".join(found)

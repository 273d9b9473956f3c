"""No function or method of callcheck is above radon's grade C (cyclomatic complexity 20): issue 11's bar.

ruff's C901 (max-complexity 20) catches most of it while editing, but counts differently (radon also counts each
`and`/`or`), so this is the check that decides.
"""

from __future__ import annotations

from pathlib import Path

from radon.complexity import cc_rank, cc_visit

SRC = Path(__file__).resolve().parent.parent / "src" / "callcheck"
HIGHEST = "C"


def too_complex(source: str) -> list[str]:
    """Each block of `source` ranked above HIGHEST, as 'name (rank complexity)'."""
    found = []
    for block in cc_visit(source):
        if cc_rank(block.complexity) > HIGHEST:
            found.append(f"{block.fullname} ({cc_rank(block.complexity)} {block.complexity})")
    return found


def test_no_function_is_above_grade_c() -> None:
    found = [
        f"{path.relative_to(SRC)}: {name}"
        for path in sorted(SRC.rglob("*.py"))
        for name in too_complex(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_the_check_sees_a_function_above_grade_c() -> None:
    branches = "\n".join(f"    if x == {i}:\n        return {i}" for i in range(25))
    assert too_complex(f"def tangled(x):\n{branches}\n    return -1\n") == ["tangled (D 26)"]

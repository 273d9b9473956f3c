"""Documentation that cannot drift: every setting documented, the README's commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

from callcheck.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        env = field.validation_alias.choices[0]  # type: ignore[union-attr]
        assert f"`{env}`" in docs, f"{env} is missing from docs/configuration.md"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in readme
    assert "./scripts/test" in ci

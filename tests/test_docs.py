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


def test_every_run_option_is_in_the_ci_options_table() -> None:
    import typer.main

    from callcheck.cli import app

    group = typer.main.get_command(app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    ci = (ROOT / "docs" / "ci.md").read_text()
    options = [opt for param in run.params for opt in param.opts if opt.startswith("--")]
    assert "--sandbox" in options and "--time-scale" in options
    for option in options:
        assert f"| `{option}" in ci, f"{option} is missing from docs/ci.md's options table"


def test_the_readme_shows_a_first_suite_run_in_the_sandbox() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "callcheck run docs/examples/pizza.yaml --sandbox --time-scale 0.05" in readme
    assert "callcheck run docs/examples/pizza-failing.yaml --sandbox --time-scale 0.05" in readme
    failing = (ROOT / "docs" / "examples" / "pizza-failing.yaml").read_text()
    assert failing.startswith("# THIS SUITE FAILS ON PURPOSE")

"""Settings refuse what cannot work (out-of-range numbers, a short key, a broken URL) and say so without the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from callcheck.config import DEFAULT_API_BASE, MIN_SECRET_KEY_CHARS, Settings, env_name, settings_problems
from callcheck.errors import ConfigurationError
from callcheck.runtime import session_secret

ROOT = Path(__file__).resolve().parent.parent


def problems_of(**values: Any) -> list[str]:
    """The lines a refused set of settings produces."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return settings_problems(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "env", "expected"),
    [
        ("poll_initial_s", 0, "CALLCHECK_POLL_INITIAL_S", "greater than or equal to 0.05"),
        ("poll_max_s", -1, "CALLCHECK_POLL_MAX_S", "greater than or equal to 0.05"),
        ("max_body_bytes", -1, "CALLCHECK_MAX_BODY_BYTES", "greater than or equal to 1000"),
        ("max_body_bytes", 10**9, "CALLCHECK_MAX_BODY_BYTES", "less than or equal to 100000000"),
        ("http_timeout_s", 0, "CALLCHECK_HTTP_TIMEOUT_S", "greater than 0"),
        ("call_timeout_s", -5, "CALLCHECK_CALL_TIMEOUT_S", "greater than 0"),
        ("call_timeout_s", 10**6, "CALLCHECK_CALL_TIMEOUT_S", "less than or equal to 86400"),
        ("sandbox_time_scale", 0, "CALLCHECK_SANDBOX_TIME_SCALE", "greater than 0"),
    ],
)
def test_out_of_range_numbers_are_refused_by_their_documented_name(
    field: str, value: float, env: str, expected: str
) -> None:
    assert problems_of(**{field: value}) == [f"invalid setting {env}: should be {expected}"]


def test_values_at_the_bounds_are_accepted() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        poll_initial_s=0.05,
        poll_max_s=0.05,
        max_body_bytes=1000,
        http_timeout_s=600,
        call_timeout_s=86_400,
        sandbox_time_scale=100,
    )
    assert (settings.poll_initial_s, settings.max_body_bytes, settings.sandbox_time_scale) == (0.05, 1000, 100)


def test_environment_values_are_named_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCHECK_POLL_MAX_S", "abc")
    monkeypatch.setenv("callcheck_http_timeout_s", "-1")  # names are case-insensitive; the documented one is shown
    assert problems_of() == [
        "invalid setting CALLCHECK_HTTP_TIMEOUT_S: should be greater than 0",
        "invalid setting CALLCHECK_POLL_MAX_S: should be a valid number, unable to parse string as a number",
    ]


def test_polls_may_not_back_off_downwards() -> None:
    assert problems_of(poll_initial_s=5, poll_max_s=1) == [
        "invalid settings: CALLCHECK_POLL_MAX_S (1) must not be less than CALLCHECK_POLL_INITIAL_S (5)"
    ]


def test_a_short_secret_key_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hunter2-" + "x" * (MIN_SECRET_KEY_CHARS - 9)  # one character short
    monkeypatch.setenv("CALLCHECK_SECRET_KEY", secret)
    (line,) = problems_of()
    assert line.startswith(
        f"invalid setting CALLCHECK_SECRET_KEY: is too short to be safe (under {MIN_SECRET_KEY_CHARS}"
    )
    assert "hunter2" not in line


def test_a_secret_key_of_the_minimum_length_or_empty_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k" * MIN_SECRET_KEY_CHARS
    monkeypatch.setenv("CALLCHECK_SECRET_KEY", key)
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    assert configured.secret_key is not None and configured.secret_key.get_secret_value() == key
    monkeypatch.setenv("CALLCHECK_SECRET_KEY", "")
    assert Settings(_env_file=None).secret_key is None  # type: ignore[call-arg]  # unset: one is generated


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_api_base_is_the_default(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    monkeypatch.setenv("ELEVENLABS_API_BASE", blank)
    assert Settings(_env_file=None).elevenlabs_api_base == DEFAULT_API_BASE  # type: ignore[call-arg]
    assert Settings(_env_file=None, elevenlabs_api_base=blank).elevenlabs_api_base == DEFAULT_API_BASE  # type: ignore[call-arg]


def test_an_empty_variable_in_a_dotenv_file_counts_as_unset(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ELEVENLABS_API_BASE=\nCALLCHECK_POLL_MAX_S=\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert (settings.elevenlabs_api_base, settings.poll_max_s) == (DEFAULT_API_BASE, 30.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://[::1", "is not a valid URL (Invalid port: ':1')"),
        ("api.elevenlabs.io", f"must be an http:// or https:// URL such as {DEFAULT_API_BASE}"),
        ("ftp://api.elevenlabs.io", f"must be an http:// or https:// URL such as {DEFAULT_API_BASE}"),
    ],
)
def test_an_api_base_that_is_no_http_url_is_refused(value: str, expected: str) -> None:
    assert problems_of(elevenlabs_api_base=value) == [f"invalid setting ELEVENLABS_API_BASE: {expected}"]


def test_a_data_dir_that_cannot_hold_the_key_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError) as caught:
        session_secret(Settings(_env_file=None, data_dir=blocker / "data"))  # type: ignore[call-arg]
    assert caught.value.message.startswith(f"Cannot keep the cookie-signing key in {blocker / 'data' / 'secret_key'}")
    assert "CALLCHECK_DATA_DIR" in caught.value.message


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def test_every_bound_is_documented() -> None:
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in (ROOT / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    }
    checked = 0
    for name, field in Settings.model_fields.items():
        env = env_name(name)
        for bound in field.metadata:
            for attribute, words in (("ge", "at least"), ("gt", "more than"), ("le", "at most")):
                if hasattr(bound, attribute):
                    assert f"{words} {_number(getattr(bound, attribute))}" in rows[env], (env, attribute)
                    checked += 1
    assert checked >= 12  # every numeric setting has a floor and a ceiling
    assert f"at least {MIN_SECRET_KEY_CHARS} characters" in rows["CALLCHECK_SECRET_KEY"]


def _documented_names() -> list[str]:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    return [line.split("|")[1].strip(" `") for line in docs.splitlines() if line.startswith("| `")]


def test_every_documented_name_sets_its_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CALLCHECK_* through env_prefix and the seed's ELEVENLABS_* through their aliases: each name reaches its field."""
    names = {env_name(field): field for field in Settings.model_fields}
    assert set(_documented_names()) >= set(names)
    for name in ("ELEVENLABS_API_KEY", "ELEVENLABS_AGENT_ID", "ELEVENLABS_API_BASE", "CALLCHECK_DATABASE_URL"):
        assert name in names
    monkeypatch.setenv("ELEVENLABS_API_KEY", "key-from-env")
    monkeypatch.setenv("ELEVENLABS_AGENT_ID", "agent-from-env")
    monkeypatch.setenv("ELEVENLABS_AGENT_PHONE_NUMBER_ID", "phone-from-env")
    monkeypatch.setenv("ELEVENLABS_API_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("ELEVENLABS_WEBHOOK_SECRET", "secret-from-env")
    monkeypatch.setenv("CALLCHECK_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("CALLCHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CALLCHECK_MAX_CALLS_PER_DAY", "7")
    monkeypatch.setenv("CALLCHECK_SMTP_STARTTLS", "false")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.elevenlabs_api_key is not None and settings.elevenlabs_api_key.get_secret_value() == "key-from-env"
    assert settings.elevenlabs_webhook_secret is not None
    assert (settings.elevenlabs_agent_id, settings.elevenlabs_agent_phone_number_id) == (
        "agent-from-env",
        "phone-from-env",
    )
    assert settings.elevenlabs_api_base == "http://127.0.0.1:9"
    assert (settings.database_url, settings.data_dir, settings.max_calls_per_day) == (
        "sqlite:///from-env.db",
        tmp_path,
        7,
    )
    assert settings.smtp_starttls is False


def test_a_dotenv_file_uses_the_same_names(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("ELEVENLABS_AGENT_ID=agent-from-file\nCALLCHECK_MAX_CALLS_PER_RUN=12\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert (settings.elevenlabs_agent_id, settings.max_calls_per_run) == ("agent-from-file", 12)


def test_names_without_the_prefix_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stray DATABASE_URL or WORKERS from another program's environment does not reach callcheck's settings."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone-else/db")
    monkeypatch.setenv("WORKERS", "false")
    monkeypatch.setenv("AGENT_ID", "not-a-name")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.database_url, settings.workers, settings.elevenlabs_agent_id) == (None, True, None)


def test_settings_are_given_by_field_name_in_code() -> None:
    settings = Settings(_env_file=None, elevenlabs_agent_id="a", max_calls_per_run=3)  # type: ignore[call-arg]
    assert (settings.elevenlabs_agent_id, settings.max_calls_per_run) == ("a", 3)

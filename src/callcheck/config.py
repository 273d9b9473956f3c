"""Settings: the seed's ELEVENLABS_* names, CALLCHECK_* for ours, read from the environment and `.env`.

One class, every field described and defaulted safely. `tests/test_docs.py` fails when a field is missing from
docs/configuration.md, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import platformdirs
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcheck.domain.destinations import DialRules
from callcheck.domain.limits import CallLimits
from callcheck.domain.pacing import MAX_SANDBOX_TIME_SCALE
from callcheck.errors import MissingSettings

# A generated key has 64; one set by hand should not be guessable either.
MIN_SECRET_KEY_CHARS = 32

DEFAULT_API_BASE = "https://api.elevenlabs.io"

# Bounds of the numeric settings (docs/configuration.md lists them). Below the poll floor a poller hammers the API;
# below the body floor every POST is refused; the ceilings catch a unit slip (milliseconds typed for seconds).
MIN_BODY_BYTES, MAX_BODY_BYTES = 1_000, 100_000_000
MAX_HTTP_TIMEOUT_S = 600.0
MIN_POLL_S, MAX_POLL_S = 0.05, 3600.0
MAX_CALL_TIMEOUT_S = 86_400.0
MAX_CALL_LIMIT = 10_000_000  # a call limit above this is a typo, not a budget

# The three names the seed requires before a call can be placed, in the seed's order.
REQUIRED_CALL_SETTINGS = ("ELEVENLABS_API_KEY", "ELEVENLABS_AGENT_ID", "ELEVENLABS_AGENT_PHONE_NUMBER_ID")


ENV_PREFIX = "CALLCHECK_"


class Settings(BaseSettings):
    """Everything callcheck can be configured with."""

    # Every setting is CALLCHECK_<FIELD> (env_prefix), except the seed's five ELEVENLABS_* names, given as aliases.
    # An empty variable (`ELEVENLABS_API_BASE=` in a .env) counts as unset: the default applies.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    elevenlabs_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="ELEVENLABS_API_KEY",
        description="ElevenLabs API key, sent as the xi-api-key header. Never stored or logged.",
    )
    elevenlabs_agent_id: str | None = Field(
        default=None,
        validation_alias="ELEVENLABS_AGENT_ID",
        description="The ElevenLabs Conversational AI agent that plays the caller.",
    )
    elevenlabs_agent_phone_number_id: str | None = Field(
        default=None,
        validation_alias="ELEVENLABS_AGENT_PHONE_NUMBER_ID",
        description="The ElevenLabs phone_number_id of the Twilio number the caller dials out from.",
    )
    elevenlabs_api_base: str = Field(
        default=DEFAULT_API_BASE,
        validation_alias="ELEVENLABS_API_BASE",
        description="Base URL of the ElevenLabs API (point it at `callcheck sandbox` to try callcheck offline).",
    )
    elevenlabs_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="ELEVENLABS_WEBHOOK_SECRET",
        description="HMAC secret of the ElevenLabs post-call webhook; without it webhooks are refused "
        "and calls are followed by polling.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of callcheck's database (sqlite:///... or postgresql://...). "
        "Default: callcheck.db in the data directory.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("callcheck")),
        description="Where callcheck keeps its SQLite database, recordings and generated secret key.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs session cookies. Default: generated once and kept in the data "
        "directory, readable only by its owner.",
    )
    public_url: str | None = Field(
        default=None,
        description="Public base URL of this server, used to tell ElevenLabs where to send webhooks.",
    )
    max_body_bytes: int = Field(
        default=1_000_000,
        ge=MIN_BODY_BYTES,
        le=MAX_BODY_BYTES,
        description="Largest request body accepted by /api/* routes (webhooks with audio excepted).",
    )
    http_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_HTTP_TIMEOUT_S,
        description="Timeout in seconds of each request to ElevenLabs.",
    )
    poll_initial_s: float = Field(
        default=2.0,
        ge=MIN_POLL_S,
        le=MAX_POLL_S,
        description=(
            "Seconds between two sweeps of the batched poller at first (one conversations list for every call "
            "followed, full fetches only of those that changed); doubles while nothing changes, up to poll_max_s."
        ),
    )
    poll_max_s: float = Field(
        default=30.0,
        ge=MIN_POLL_S,
        le=MAX_POLL_S,
        description=(
            "Longest time in seconds between two sweeps of the batched poller (and between two fetches of a followed "
            "call the list does not show)."
        ),
    )
    call_timeout_s: float = Field(
        default=1800.0,
        gt=0,
        le=MAX_CALL_TIMEOUT_S,
        description="How long a call is followed before it is marked timed_out.",
    )
    conversation_not_found_s: float = Field(
        default=120.0,
        gt=0,
        le=MAX_CALL_TIMEOUT_S,
        description="How long after ElevenLabs accepted a call its conversation may stay unknown (404 on every "
        "read) before the call fails as 'conversation not found upstream'.",
    )
    sandbox: bool = Field(
        default=False,
        description="Run an in-process ElevenLabs sandbox and point the client at it (no account needed).",
    )
    sandbox_time_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SANDBOX_TIME_SCALE,
        description="Speed of simulated calls in the sandbox: 1.0 is real time, 0.1 ten times faster.",
    )
    workers: bool = Field(
        default=True,
        description="Run the durable workers that follow calls to their end in this process.",
    )
    executor_lease_s: float = Field(
        default=15.0,
        ge=1.0,
        le=3600.0,
        description="On PostgreSQL, how long a process that stops renewing its lease (every third of this) is "
        "still taken for alive; after it, a live process takes its unfinished work over.",
    )
    run_calls_per_process: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Most suite-run calls one process with workers places and follows at once (0: no limit). On "
        "PostgreSQL a run's calls are placed by whichever process has room: set it the same on every process.",
    )
    judge_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible API for `judge` assertions "
        "(POST {base}/v1/chat/completions). Without it (or the model), judge assertions are not evaluated.",
    )
    judge_api_key: SecretStr | None = Field(
        default=None,
        description="Bearer token for the judge API; optional for local servers. Never stored or logged.",
    )
    judge_model: str | None = Field(
        default=None,
        description="Model name the judge API is asked to use, e.g. gpt-4o-mini.",
    )
    # -- monitors (docs/monitoring.md) --
    monitor_tick_s: float = Field(
        default=1.0,
        ge=0.1,
        le=60.0,
        description="How often, in seconds, a server looks for monitor slots that are due (and for changed monitors).",
    )
    alert_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 secret that signs monitor alerts sent to generic webhooks "
        "(X-Callcheck-Signature); unset: alerts are sent unsigned. Never stored or logged.",
    )
    alert_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="How many times an alert is tried on a channel before it is recorded as failed.",
    )
    alert_backoff_s: float = Field(
        default=10.0,
        ge=0.1,
        le=3600.0,
        description="Wait in seconds before an alert's second attempt; it doubles before each further one.",
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server that sends email alerts; without it (or CALLCHECK_SMTP_FROM) email alerts fail.",
    )
    smtp_port: int = Field(
        default=587,
        ge=1,
        le=65535,
        description="Port of the SMTP server.",
    )
    smtp_username: str | None = Field(
        default=None,
        description="User name to log in to the SMTP server with (none: no login).",
    )
    smtp_password: SecretStr | None = Field(
        default=None,
        description="Password of the SMTP login. Never stored or logged.",
    )
    smtp_from: str | None = Field(
        default=None,
        description="Sender address of email alerts, e.g. callcheck@example.com.",
    )
    smtp_starttls: bool = Field(
        default=True,
        description="Upgrade the SMTP connection with STARTTLS before logging in and sending.",
    )
    smtp_ssl: bool = Field(
        default=False,
        description="Connect to the SMTP server over TLS from the start (port 465) instead of STARTTLS.",
    )
    allowed_countries: str | None = Field(
        default=None,
        description="Calling codes that may be called, e.g. `1,44`; `*` for every country, `none` for none but "
        "CALLCHECK_ALLOWED_NUMBERS. Default: the country of the agent's own phone number. Premium-rate, shared-cost "
        "and international-network numbers stay refused (docs/limits.md).",
    )
    allowed_numbers: str | None = Field(
        default=None,
        description="E.164 numbers and prefixes that may be called whatever their country, e.g. "
        "`+1415555,+442071234567`; a premium-rate or network number is allowed only when named here in full.",
    )
    max_calls_per_number_per_day: int = Field(
        default=100,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most calls placed to one number in any 24 hours (0: no limit).",
    )
    max_calls_per_minute: int = Field(
        default=60,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most calls placed in any 60 seconds, all numbers together (0: no limit).",
    )
    max_concurrent_calls: int = Field(
        default=0,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most calls in progress at once, every run and every process together (0: no limit). A suite "
        "run waits for a place; a single call over it is refused with a 429.",
    )
    max_calls_per_day: int = Field(
        default=1000,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most calls placed in any 24 hours, all numbers together (0: no limit).",
    )
    max_calls_per_run: int = Field(
        default=1000,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most calls one suite run may plan (its scenarios times their repeats; 0: no limit).",
    )
    max_suite_bytes: int = Field(
        default=1_000_000,
        ge=0,
        le=MAX_BODY_BYTES,
        description="Largest suite accepted, in bytes (0: no limit).",
    )
    max_suite_scenarios: int = Field(
        default=1000,
        ge=0,
        le=MAX_CALL_LIMIT,
        description="Most scenarios a suite may have (0: no limit).",
    )

    allowed_hosts: str | None = Field(
        default=None,
        description="Comma-separated host names this server answers to, besides the loopback names, IP addresses "
        "and the host of CALLCHECK_PUBLIC_URL (`*` for any); other Host headers get 421. Closes DNS rebinding.",
    )
    public_badges: bool = Field(
        default=False,
        description="Serve the monitors' status badges (GET /badge/monitors/{name}.svg) without a token even when "
        "tokens exist, so a README or a status page elsewhere can show them. They tell a monitor's name and status.",
    )
    trusted_proxies: str | None = Field(
        default=None,
        description="Comma-separated IP addresses or CIDR networks of reverse proxies whose X-Forwarded-Proto, "
        "X-Forwarded-For and X-Forwarded-Host headers are believed. Default: none.",
    )

    @field_validator("elevenlabs_api_base", mode="before")
    @classmethod
    def _blank_api_base_is_the_default(cls, value: object) -> object:
        return DEFAULT_API_BASE if isinstance(value, str) and not value.strip() else value

    @field_validator("elevenlabs_api_base")
    @classmethod
    def _api_base_is_an_http_url(cls, value: str) -> str:
        value = value.strip()
        # Parsed as the ElevenLabs client will parse it, so a URL accepted here cannot fail there.
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"is not a valid URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"must be an http:// or https:// URL such as {DEFAULT_API_BASE}")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None  # unset: one is generated (session_secret)
        if len(value.get_secret_value()) < MIN_SECRET_KEY_CHARS:
            # The message never quotes the key.
            raise ValueError(
                f"is too short to be safe (under {MIN_SECRET_KEY_CHARS} characters): set a long random one, e.g. "
                "from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`, or unset it to have one "
                "generated"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str | None) -> str | None:
        for item in _listed(value):
            try:
                ipaddress.ip_network(item)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return value

    def allowed_host_names(self) -> list[str]:
        """The host names of CALLCHECK_ALLOWED_HOSTS and of CALLCHECK_PUBLIC_URL, lower case."""
        names = [name.lower().rstrip(".") for name in _listed(self.allowed_hosts)]
        if self.public_url:
            try:
                public_host = httpx.URL(self.public_url.strip()).host
            except httpx.InvalidURL:
                public_host = ""
            if public_host:
                names.append(public_host.lower())
        return names

    def trusted_proxy_list(self) -> list[str]:
        """CALLCHECK_TRUSTED_PROXIES as a list of addresses and networks."""
        return _listed(self.trusted_proxies)

    @field_validator("allowed_countries", "allowed_numbers")
    @classmethod
    def _dial_rules_parse(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.field_name == "allowed_countries":
            DialRules.parse(value, None)
        else:
            DialRules.parse(None, value)
        return value

    @model_validator(mode="after")
    def _polls_back_off_upwards(self) -> Settings:
        if self.poll_max_s < self.poll_initial_s:
            raise ValueError(
                f"CALLCHECK_POLL_MAX_S ({self.poll_max_s:g}) must not be less than "
                f"CALLCHECK_POLL_INITIAL_S ({self.poll_initial_s:g})"
            )
        return self

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'callcheck.db'}"

    def dial_rules(self) -> DialRules:
        """Who may be called: CALLCHECK_ALLOWED_COUNTRIES and CALLCHECK_ALLOWED_NUMBERS, parsed."""
        return DialRules.parse(self.allowed_countries, self.allowed_numbers)

    def call_limits(self) -> CallLimits:
        """The call budgets (0: no limit), counted in the database."""
        return CallLimits(
            per_number_per_day=self.max_calls_per_number_per_day,
            per_minute=self.max_calls_per_minute,
            per_day=self.max_calls_per_day,
            concurrent=self.max_concurrent_calls,
        )

    def missing_call_settings(self) -> list[str]:
        """Names (never values) of the seed's required settings that are unset or blank."""
        values = {
            "ELEVENLABS_API_KEY": self.elevenlabs_api_key.get_secret_value() if self.elevenlabs_api_key else "",
            "ELEVENLABS_AGENT_ID": self.elevenlabs_agent_id or "",
            "ELEVENLABS_AGENT_PHONE_NUMBER_ID": self.elevenlabs_agent_phone_number_id or "",
        }
        return [name for name in REQUIRED_CALL_SETTINGS if not values[name].strip()]

    def require_call_settings(self) -> None:
        """MissingSettings (names only) when a setting a call needs is unset: checked before anything is stored or
        sent, by whoever is about to (the placing, the caller provider)."""
        missing = self.missing_call_settings()
        if missing:
            raise MissingSettings(missing)


def _listed(value: str | None) -> list[str]:
    """The non-blank items of a comma-separated setting."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def env_name(field_name: str) -> str:
    """The environment variable (and `.env` name) of a setting, as docs/configuration.md lists it."""
    alias = Settings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field_name.upper()


def _env_names() -> dict[str, str]:
    """Every name a setting can be given under (lower case) -> the name its documentation uses."""
    names: dict[str, str] = {}
    for field_name in Settings.model_fields:
        documented = env_name(field_name)
        for name in (field_name, documented):
            names[name.lower()] = documented
    return names


def settings_problems(error: ValidationError) -> list[str]:
    """One plain line per invalid setting, named as documented; never its value (it may be a secret)."""
    names = _env_names()
    lines = []
    for problem in error.errors(include_input=False, include_url=False, include_context=False):
        message = problem["msg"].removeprefix("Value error, ")
        if message.startswith("Input should"):
            message = "should" + message.removeprefix("Input should")
        loc = problem["loc"]
        if loc:
            name = names.get(str(loc[0]).lower(), str(loc[0]))
            lines.append(f"invalid setting {name}: {message}")
        else:
            lines.append(f"invalid settings: {message}")
    return lines

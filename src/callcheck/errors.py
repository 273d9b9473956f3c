"""The one error tree of callcheck. Errors carry a message for a person (and data), never an HTTP status.

    CallcheckError
    ├── InvalidInput          the request or file is wrong; the caller can fix it
    │   └── UnsupportedMediaType  the body is declared as something other than JSON
    ├── NotFound              the thing asked for does not exist
    ├── Conflict              the request clashes with the current state (an idempotency key still dialing)
    ├── KeyReused             an idempotency key used again for a different request
    ├── CallNotPlaced         a call asked for earlier (same idempotency key) was not placed
    ├── Unauthorized          a signature or credential did not check out
    ├── DestinationRefused    the dialing rules forbid calling this number (names the rule)
    ├── LimitReached          a call budget is spent (names the budget and when it frees up)
    ├── ConfigurationError    callcheck itself is not set up (missing settings, agent not ready)
    └── UpstreamError         ElevenLabs failed us
        ├── UpstreamHTTPError     it answered with an error (status and message kept)
        │   └── UpstreamNotSuccess    it answered 200 with `success: false` (nothing placed)
        └── UpstreamUnreachable   it could not be reached (connection error, timeout)

`callcheck.edge.errors` is the single place that maps these to `{"error": ...}` and a status code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class CallcheckError(Exception):
    """Base of every error callcheck raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CallcheckError):
    """The input is wrong in a way its sender can fix."""


class UnsupportedMediaType(InvalidInput):
    """The request declares a body type callcheck does not read."""


class NotFound(CallcheckError):
    """The requested object does not exist."""


class Conflict(CallcheckError):
    """The request conflicts with the current state."""


class KeyReused(CallcheckError):
    """An Idempotency-Key was used again for a different request."""


class CallNotPlaced(CallcheckError):
    """A call asked for earlier (the same Idempotency-Key) was not placed, for a reason of our own or the call's."""


class Unauthorized(CallcheckError):
    """A signature or credential did not verify."""


class DestinationRefused(CallcheckError):
    """The dialing rules do not allow calling this number; `rule` names which (domain.destinations.Rule)."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class LimitReached(CallcheckError):
    """A call budget is spent: `limit` is its setting's name, `resets_at` when a call may be placed again."""

    def __init__(self, message: str, limit: str, resets_at: datetime) -> None:
        super().__init__(message)
        self.limit = limit
        self.resets_at = resets_at


class ConfigurationError(CallcheckError):
    """callcheck is not configured to do what was asked."""


class MissingSettings(ConfigurationError):
    """Required settings are absent; carries their names (never their values)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("Missing required environment variables: " + ", ".join(names))
        self.names = names


class UpstreamError(CallcheckError):
    """ElevenLabs did not do what we asked."""


class UpstreamHTTPError(UpstreamError):
    """ElevenLabs answered with an error status (or a 200 saying it failed)."""

    def __init__(self, status: int, detail: str, body: Any = None) -> None:
        super().__init__(f"ElevenLabs API error ({status}): {detail}")
        self.status = status
        self.detail = detail
        self.body = body


class UpstreamNotSuccess(UpstreamHTTPError):
    """ElevenLabs answered 200 but said `success: false`: no call was placed. The 200 is left out of the message
    (`ElevenLabs API error (200)` reads as if a success were an error); the seed's prefix stays."""

    def __init__(self, detail: str, body: Any = None) -> None:
        super().__init__(200, detail, body)
        self.message = f"ElevenLabs API error: {detail} (ElevenLabs answered success: false; no call was placed)"
        self.args = (self.message,)


class UpstreamUnreachable(UpstreamError):
    """ElevenLabs could not be reached at all."""

    def __init__(self, reason: str, *, maybe_sent: bool = True) -> None:
        super().__init__(f"Could not reach ElevenLabs: {reason}")
        self.reason = reason
        # False only when the request certainly never left (no connection was made): a timeout or a dropped
        # connection may hide a request ElevenLabs received and acted on.
        self.maybe_sent = maybe_sent

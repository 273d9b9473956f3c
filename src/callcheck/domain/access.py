"""Who may do what: API token scopes, the token format, and the scope each request needs (pure; no I/O).

A token is `cc_<id>_<secret>`: the id finds its row, the secret is checked against the row's SHA-256 in constant
time. Only the hash is stored; the token is shown once, when created. 32 random bytes make guessing hopeless, so a
fast hash is enough (a slow password hash guards low-entropy secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum

from callcheck.errors import InvalidInput

TOKEN_PREFIX = "cc_"
TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_NAME_RULE = (
    "A token name is 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit."
)


class TokenScope(StrEnum):
    """What a token may do; each scope includes the ones before it."""

    READ = "read"  # see calls, runs, recordings and transcripts
    CALL = "call"  # also place calls, start and cancel runs, set the session's context
    ADMIN = "admin"  # also the set-up checks (doctor) and token management

    @property
    def rank(self) -> int:
        """0 for read, 1 for call, 2 for admin."""
        return list(TokenScope).index(self)

    def allows(self, needed: TokenScope) -> bool:
        """True when this scope includes `needed`."""
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Identity:
    """The token a request was made with (by bearer header or by a logged-in session)."""

    token_id: str
    name: str
    scope: TokenScope
    by_session: bool  # True: the page's login cookie (state-changing requests then need the CSRF token)


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: the text to show once, and what is stored."""

    token_id: str
    token: str
    hash: str


def secret_hash(secret: str) -> str:
    """SHA-256 (hex) of a token's secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token() -> NewToken:
    """A new random token."""
    token_id = uuid.uuid4().hex[:16]
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", secret_hash(secret))


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    token_id, sep, secret = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not secret or not re.fullmatch(r"[0-9a-f]{16}", token_id):
        return None
    return token_id, secret


def secret_matches(stored_hash: str, secret: str) -> bool:
    """True when `secret` hashes to `stored_hash` (compared in constant time)."""
    return hmac.compare_digest(stored_hash.encode("ascii"), secret_hash(secret).encode("ascii"))


def valid_name(name: str) -> str:
    """The name, stripped; InvalidInput when it breaks the naming rule."""
    name = name.strip()
    if not TOKEN_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(TOKEN_NAME_RULE)
    return name


def parse_scope(value: str) -> TokenScope:
    """A scope by name; InvalidInput naming the choices otherwise."""
    try:
        return TokenScope(value.strip().lower())
    except ValueError:
        raise InvalidInput("A token's scope is one of: read, call, admin.") from None


# -- which routes need what ---------------------------------------------------------------------------------------

# Open whatever tokens exist: readiness, the webhook (it carries its own HMAC signature), the login page and the
# static files it needs (CSS, scripts, vendored htmx: nothing private).
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
OPEN_PREFIXES = ("/static/",)
# Where ElevenLabs posts its signed post-call webhooks (api/webhooks.py serves it): the one definition of the path.
ELEVENLABS_WEBHOOK_PATH = "/api/webhooks/elevenlabs"
WEBHOOK_PATHS = frozenset({ELEVENLABS_WEBHOOK_PATH})
# The set-up checks use the ElevenLabs key and describe the whole set-up; token management hands out access.
# (/parts/setup, the page's panel of the same checks, tells a non-admin so itself rather than failing.)
ADMIN_PATHS = frozenset({"/api/doctor"})
ADMIN_PREFIXES = ("/api/tokens",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


BADGE_PREFIX = "/badge/"


def is_open(method: str, path: str, *, public_badges: bool = False) -> bool:
    """True for requests that need no token even when tokens exist (badges too when the server makes them public)."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return True
    if public_badges and method.upper() in SAFE_METHODS and path.startswith(BADGE_PREFIX):
        return True
    return path in WEBHOOK_PATHS and method == "POST"


def needed_scope(method: str, path: str) -> TokenScope:
    """The least scope a request needs: admin for the set-up checks and tokens, call to change anything, else read."""
    if path in ADMIN_PATHS or path.startswith(ADMIN_PREFIXES):
        return TokenScope.ADMIN
    if method.upper() in SAFE_METHODS:
        return TokenScope.READ
    return TokenScope.CALL

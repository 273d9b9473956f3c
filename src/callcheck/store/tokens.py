"""API tokens: stored hashed, looked up by id, revoked but never deleted (their names stay in the history)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from callcheck.domain.access import Identity, NewToken, TokenScope, new_token, secret_matches, split_token
from callcheck.errors import Conflict, NotFound
from callcheck.store.tables import tokens

# last_used_at is written at most this often per token and process: a busy client must not make every read a write.
LAST_USED_EVERY = timedelta(minutes=1)
# Whether any token is active is asked on every request of a server without a bearer token (a local one, usually):
# the answer is kept this long. A token created or revoked through this store (the API) counts at once; one created
# or revoked by another process (`callcheck token create` beside a running server) within this many seconds.
ACTIVE_FRESH_S = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass
class TokenRow:
    """A stored token, without its hash."""

    id: str
    name: str
    scope: TokenScope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenStore:
    """The tokens table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._last_used: dict[str, datetime] = {}
        self._active: tuple[bool, float] | None = None  # (any token active, when it was read: time.monotonic())
        self._changes = 0  # tokens created or revoked here: a read that began before one is not kept

    async def create(self, name: str, scope: TokenScope) -> tuple[TokenRow, str]:
        """A new token named `name` (unique, revoked ones included) and its text, to be shown once."""
        made: NewToken = new_token()
        now = _now()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.insert(tokens).values(
                        id=made.token_id, name=name, scope=scope.value, hash=made.hash, created_at=now
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"A token named {name!r} exists already (names are never reused).") from exc
        self._forget_active()
        return TokenRow(made.token_id, name, scope, now, None, None), made.token

    async def list(self) -> list[TokenRow]:
        """Every token, revoked ones included, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(tokens).order_by(tokens.c.created_at, tokens.c.name))
            return [self._row(r) for r in rows.all()]

    async def revoke(self, name: str) -> TokenRow:
        """Revoke the token with this name (at once, for its sessions too); NotFound when there is none."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(tokens).where(tokens.c.name == name, tokens.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
            row = (await conn.execute(sa.select(tokens).where(tokens.c.name == name))).first()
        self._forget_active()
        if row is None:
            raise NotFound(f"No token is named {name!r}.")
        return self._row(row)

    async def any_active(self, *, fresh: bool = False) -> bool:
        """True when at least one token is not revoked: then every route but the open ones needs a token.

        Read at most every ACTIVE_FRESH_S (see there), unless `fresh`: a request without a token then costs no
        database read.
        """
        now = time.monotonic()
        if not fresh and self._active is not None and now - self._active[1] < ACTIVE_FRESH_S:
            return self._active[0]
        changes = self._changes
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(tokens.c.id).where(tokens.c.revoked_at.is_(None)).limit(1))
            active = found.first() is not None
        if changes == self._changes:
            self._active = (active, now)
        return active

    def _forget_active(self) -> None:
        self._changes += 1
        self._active = None

    async def identify(self, token: str) -> Identity | None:
        """The identity of a bearer token, or None when it is malformed, unknown, wrong or revoked."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        found = await self._active_row(token_id)
        if found is None or not secret_matches(found.hash, secret):
            return None
        await self._touch(token_id)
        return Identity(token_id, found.name, TokenScope(found.scope), by_session=False)

    async def session_identity(self, token_id: str) -> Identity | None:
        """The identity of a logged-in session's token; None once the token is revoked."""
        found = await self._active_row(token_id)
        if found is None:
            return None
        await self._touch(token_id)
        return Identity(token_id, found.name, TokenScope(found.scope), by_session=True)

    async def _active_row(self, token_id: str) -> Any:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(tokens.c.hash, tokens.c.name, tokens.c.scope).where(
                    tokens.c.id == token_id, tokens.c.revoked_at.is_(None)
                )
            )
            return result.first()

    async def _touch(self, token_id: str) -> None:
        now = _now()
        last = self._last_used.get(token_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return
        self._last_used[token_id] = now
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(tokens).where(tokens.c.id == token_id).values(last_used_at=now))

    @staticmethod
    def _row(row: sa.Row[object]) -> TokenRow:
        r = row._mapping
        return TokenRow(
            id=str(r["id"]),
            name=str(r["name"]),
            scope=TokenScope(str(r["scope"])),
            created_at=_aware(r["created_at"]) or _now(),
            last_used_at=_aware(r["last_used_at"]),
            revoked_at=_aware(r["revoked_at"]),
        )

"""API tokens as the API shows them: never the token itself (not kept), except once, when it is made."""

from __future__ import annotations

from pydantic import BaseModel, Field

from callcheck.domain.access import TokenScope
from callcheck.store.tokens import TokenRow


class TokenView(BaseModel):
    name: str
    scope: TokenScope
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class TokenList(BaseModel):
    """Every token, revoked ones included, oldest first."""

    tokens: list[TokenView]


class TokenCreated(TokenView):
    token: str = Field(description="The token: shown this once, never again.")


def token_view(row: TokenRow) -> TokenView:
    """A token as the API shows it (never the token itself, which is not kept)."""
    return TokenView(
        name=row.name,
        scope=row.scope,
        created_at=row.created_at.isoformat(),
        last_used_at=row.last_used_at.isoformat() if row.last_used_at else None,
        revoked_at=row.revoked_at.isoformat() if row.revoked_at else None,
    )

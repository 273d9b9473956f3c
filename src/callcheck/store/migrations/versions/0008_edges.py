"""calls.error_kind: what a call's stored error means (refused / unreachable), so a replay reads a kind, not text

Revision ID: 0008_edges
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_edges"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_kind", sa.String(16), nullable=True))
    # Calls stored before the column: the kind their error text's seed prefix said (the last time text decides it).
    calls = sa.table("calls", sa.column("error", sa.Text), sa.column("error_kind", sa.String(16)))
    op.execute(calls.update().where(calls.c.error.like("ElevenLabs API error%")).values(error_kind="refused"))
    op.execute(calls.update().where(calls.c.error.like("Could not reach%")).values(error_kind="unreachable"))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("error_kind")

"""executors: the processes running durable work on this database, with a heartbeat lease each; calls.placed_by

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "executors",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("adopted_by", sa.String(128), nullable=True),
        sa.Column("adopted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_executors"),
    )
    op.create_index("ix_executors_state", "executors", ["state"])
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("placed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("placed_by")
    op.drop_index("ix_executors_state", table_name="executors")
    op.drop_table("executors")

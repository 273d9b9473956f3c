"""call_events.turns: how many transcript turns a `transcript` event tells of, as a number

Until now the count lived only in the event's English detail ("3 turns"), and the live stream parsed it back out.
Existing events get the number from that detail once, here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:40:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COUNT = re.compile(r"(\d+) turns?\b")


def upgrade() -> None:
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turns", sa.Integer(), nullable=True))
    events = sa.table(
        "call_events", sa.column("id", sa.Integer), sa.column("kind"), sa.column("detail"), sa.column("turns")
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.id, events.c.detail).where(events.c.kind == "transcript")).all()
    for row in rows:
        found = _COUNT.match(row.detail or "")
        if found:
            connection.execute(sa.update(events).where(events.c.id == row.id).values(turns=int(found.group(1))))


def downgrade() -> None:
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_column("turns")

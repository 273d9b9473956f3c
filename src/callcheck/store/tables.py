"""The database schema (SQLAlchemy Core). Alembic migrations under migrations/ create exactly this."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Timestamp = sa.DateTime(timezone=True)

contexts = sa.Table(
    "contexts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("scenario", sa.Text, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("origin", sa.String(16), nullable=False),  # api | web | suite
    sa.Column("context_id", sa.String(64), nullable=True),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("to_number", sa.String(20), nullable=False),
    sa.Column("business_description", sa.Text, nullable=False),
    sa.Column("scenario", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("first_message", sa.Text, nullable=False),
    # Exactly what was sent upstream; it never holds the API key (that travels only in a header).
    sa.Column("request_payload", sa.JSON, nullable=False),
    sa.Column("upstream_response", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("conversation_id", sa.String(128), nullable=True, index=True),
    sa.Column("call_sid", sa.String(128), nullable=True),
    sa.Column("transcript", sa.JSON, nullable=True),
    sa.Column("analysis", sa.JSON, nullable=True),
    sa.Column("facts", sa.JSON, nullable=True),
    sa.Column("journey", sa.JSON, nullable=True),
    sa.Column("recording_path", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    sa.Index("ix_calls_created_at_id", "created_at", "id"),
    sa.Index("ix_calls_state", "state"),
)

call_events = sa.Table(
    "call_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # state | transcript | recording | note
    sa.Column("state", sa.String(16), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(128), nullable=True, index=True),
    # sha256 of the raw body: a repeated delivery is recognised and changes nothing.
    sa.Column("digest", sa.String(64), nullable=False, unique=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("call_id", sa.String(32), nullable=True),
)

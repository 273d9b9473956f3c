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
    # What the error means (domain.lifecycle.CallErrorKind); NULL with no error, or an error of no kind.
    sa.Column("error_kind", sa.String(16), nullable=True),
    sa.Column("conversation_id", sa.String(128), nullable=True, index=True),
    sa.Column("call_sid", sa.String(128), nullable=True),
    sa.Column("transcript", sa.JSON, nullable=True),
    sa.Column("analysis", sa.JSON, nullable=True),
    sa.Column("facts", sa.JSON, nullable=True),
    sa.Column("journey", sa.JSON, nullable=True),
    sa.Column("recording_path", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
    sa.Column("timeout_s", sa.Float, nullable=True),  # a suite scenario's own cap; None: the setting's
    # The executor (process) that recorded and dialed the call, on PostgreSQL (jobs/executors.py): while it lives,
    # a call it left DIALING is its own dial in flight, not an orphan.
    sa.Column("placed_by", sa.String(128), nullable=True),
    sa.Column("token_name", sa.String(64), nullable=True),  # the API token that placed it; None: no token in use
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
    # For `transcript` events: how many turns the transcript had when the event was written (the live stream sends a
    # resuming client only the turns after it).
    sa.Column("turns", sa.Integer, nullable=True),
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

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # running | cancelling | completed | cancelled | failed
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("source_name", sa.Text, nullable=False),
    sa.Column("suite_text", sa.Text, nullable=False),  # the suite as given, so a resumed run plans the same calls
    sa.Column("only", sa.JSON, nullable=True),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("rate_per_min", sa.Float, nullable=True),
    sa.Column("last_placed_at", sa.Float, nullable=True),  # unix time of the last dial, for the rate limit
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("report", sa.JSON, nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # The DBOS executor id of the `callcheck run` process that owns the run; NULL for runs a server owns.
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("token_name", sa.String(64), nullable=True),  # the API token that started it; None: no token in use
    sa.Index("ix_runs_created_at_id", "created_at", "id"),
    # A monitor's run, and the slot of its schedule it ran for (unix seconds): one run per slot, whoever fires it.
    sa.Column("monitor_id", sa.String(32), nullable=True),
    sa.Column("monitor_slot", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("monitor_id", "monitor_slot", name="uq_runs_monitor_id"),
)

run_items = sa.Table(
    "run_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("scenario", sa.Text, nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | placed | skipped
    sa.Column("call_id", sa.String(32), nullable=True),
    sa.UniqueConstraint("run_id", "position", name="uq_run_items_run_id_position"),
)

monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("suite_text", sa.Text, nullable=False),
    sa.Column("source_name", sa.Text, nullable=False),
    sa.Column("suite_name", sa.Text, nullable=False),
    sa.Column("calls_per_run", sa.Integer, nullable=False),
    sa.Column("every_s", sa.Integer, nullable=True),  # either a fixed period...
    sa.Column("cron", sa.String(200), nullable=True),  # ...or a cron expression, in `timezone`
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("alert_after", sa.Integer, nullable=False),  # consecutive failing runs before the alert
    sa.Column("channels", sa.JSON, nullable=False),  # [{"kind": "webhook|slack|email", "target": "..."}]
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | passing | failing
    sa.Column("consecutive_failures", sa.Integer, nullable=False),
    sa.Column("status_changed_at", Timestamp, nullable=True),
    sa.Column("last_slot", sa.BigInteger, nullable=True),  # the newest slot claimed (ran, skipped or missed)
    sa.Column("run_requested_at", sa.BigInteger, nullable=True),  # `monitor run NAME`: run at once
    sa.Column("last_run_id", sa.String(32), nullable=True),  # the newest run whose outcome was applied
    sa.Column("skipped_slots", sa.Integer, nullable=False),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "monitor_id", sa.String(32), sa.ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # alert | recovery | test
    sa.Column("status", sa.String(16), nullable=False),  # the monitor's new status
    sa.Column("channel", sa.String(16), nullable=False),  # webhook | slack | email
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("delivered_at", Timestamp, nullable=True),
    # One delivery per run and channel: an outcome applied twice (a step re-run after a crash) alerts once.
    sa.UniqueConstraint("run_id", "channel", "target", name="uq_alert_deliveries_run_id"),
)

# The processes that run durable work on this database (PostgreSQL; jobs/executors.py): one row per process life,
# kept alive by its heartbeat. A row whose lease ran out is claimed by exactly one live process, which takes its
# workflows over.
executors = sa.Table(
    "executors",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),  # the DBOS executor id
    sa.Column("role", sa.String(16), nullable=False),  # server | worker | run
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    # Unix seconds by the database's clock (processes on several machines agree on it).
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # alive | released | adopting | adopted
    sa.Column("adopted_by", sa.String(128), nullable=True),
    sa.Column("adopted_at", Timestamp, nullable=True),
    sa.Index("ix_executors_state", "state"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # Names are never reused (a revoked token keeps its name), so a name in the history means one token.
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),  # read | call | admin
    sa.Column("hash", sa.String(64), nullable=False),  # sha256 hex of its secret; the token itself is never kept
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

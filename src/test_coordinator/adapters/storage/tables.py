"""The coordinator's tables. They name no schema: PostgreSQL engines map the default
schema to the instance's own (``schema_translate_map``), SQLite has none.

Changing a table means a new migration in ``migrations/versions``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text(), primary_key=True),
    sa.Column("scenario", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("ended_at_ms", sa.BigInteger(), nullable=True),
    sa.Column("summary", Json, nullable=False),
    sa.Index("ix_runs_started_at_ms", "started_at_ms"),
    # run listings (RunQuery): one scenario's or one status's runs, newest first
    sa.Index("ix_runs_scenario_started_at_ms", "scenario", "started_at_ms", "run_id"),
    sa.Index("ix_runs_status_started_at_ms", "status", "started_at_ms", "run_id"),
)

journal_events = sa.Table(
    "journal_events",
    metadata,
    sa.Column("run_id", sa.Text(), primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("at_ms", sa.BigInteger(), nullable=False),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("data", Json, nullable=False),
)

undo_records = sa.Table(
    "undo_records",
    metadata,
    sa.Column("undo_id", sa.Text(), primary_key=True),
    sa.Column("run_id", sa.Text(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("action", Json, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_undo_records_status", "status"),
    sa.Index("ix_undo_records_run_id", "run_id"),
)

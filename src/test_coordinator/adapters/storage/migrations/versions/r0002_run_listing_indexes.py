"""Indexes for listing runs by scenario or status, newest first (RunQuery).

Both end with ``(started_at_ms, run_id)``, the listing's order and keyset, so a
page of one scenario's (or one status's) runs is a range of one index, read
backwards, with no sort.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_index(
        "ix_runs_scenario_started_at_ms",
        "runs",
        ["scenario", "started_at_ms", "run_id"],
        schema=schema,
    )
    op.create_index(
        "ix_runs_status_started_at_ms",
        "runs",
        ["status", "started_at_ms", "run_id"],
        schema=schema,
    )


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_index("ix_runs_status_started_at_ms", table_name="runs", schema=schema)
    op.drop_index("ix_runs_scenario_started_at_ms", table_name="runs", schema=schema)

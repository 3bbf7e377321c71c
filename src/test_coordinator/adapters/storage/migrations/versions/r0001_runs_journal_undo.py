"""Runs, their journal events, and undo records.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("summary", Json, nullable=False),
        schema=schema,
    )
    op.create_index("ix_runs_started_at_ms", "runs", ["started_at_ms"], schema=schema)
    op.create_table(
        "journal_events",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("data", Json, nullable=False),
        schema=schema,
    )
    op.create_table(
        "undo_records",
        sa.Column("undo_id", sa.Text(), primary_key=True),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("action", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        schema=schema,
    )
    op.create_index("ix_undo_records_status", "undo_records", ["status"], schema=schema)
    op.create_index("ix_undo_records_run_id", "undo_records", ["run_id"], schema=schema)


def downgrade() -> None:
    schema = op.get_context().version_table_schema
    op.drop_table("undo_records", schema=schema)
    op.drop_table("journal_events", schema=schema)
    op.drop_table("runs", schema=schema)

"""Alembic, run programmatically on an open connection (SQLite or PostgreSQL).

On PostgreSQL the instance's schema is created if missing and holds everything,
Alembic's version table included; concurrent starters of the same instance take
turns on an advisory lock, so they cannot race each other's DDL.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


async def upgrade_to_head(connection: AsyncConnection, schema: str | None) -> None:
    """Migrate within the connection's transaction; the caller commits."""
    if schema is not None:
        lock_key = zlib.crc32(f"test-coordinator:migrate:{schema}".encode())
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
        await connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    await connection.run_sync(_upgrade, schema)


def alembic_config(connection: sa.Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic config for the shipped migrations (env.py reads the two attributes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _upgrade(connection: sa.Connection, schema: str | None) -> None:
    command.upgrade(alembic_config(connection, schema), "head")

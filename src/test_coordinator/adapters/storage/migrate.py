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

from test_coordinator.ports.availability import StorageRejected

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class SchemaOfAnotherInstance(StorageRejected):
    """The schema is claimed by an instance of another name (one differing only in case
    derives the same schema): sharing it would mix their runs and recoveries."""


async def upgrade_to_head(
    connection: AsyncConnection, schema: str | None, owner: str | None = None
) -> None:
    """Migrate within the connection's transaction; the caller commits.

    On PostgreSQL the schema is claimed for the instance ``owner`` (its comment holds the
    name): a schema another instance claimed raises SchemaOfAnotherInstance.
    """
    if schema is not None:
        lock_key = zlib.crc32(f"test-coordinator:migrate:{schema}".encode())
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
        await connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
        if owner is not None:
            await _claim(connection, schema, quoted, owner)
    await connection.run_sync(_upgrade, schema)


async def _claim(connection: AsyncConnection, schema: str, quoted: str, owner: str) -> None:
    claimed = await connection.scalar(
        sa.text("SELECT obj_description(to_regnamespace(:schema)::oid, 'pg_namespace')"),
        {"schema": schema},
    )
    if claimed is None:
        literal = "'" + owner.replace("'", "''") + "'"
        await connection.execute(sa.text(f"COMMENT ON SCHEMA {quoted} IS {literal}"))
    elif claimed != owner:
        raise SchemaOfAnotherInstance(
            f"PostgreSQL schema {schema} belongs to the instance {claimed!r}, and this one, "
            f"{owner!r}, derives the same name (instance names that differ only in case "
            "do): set POSTGRES_SCHEMA to a schema of its own"
        )


def alembic_config(connection: sa.Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic config for the shipped migrations (env.py reads the two attributes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _upgrade(connection: sa.Connection, schema: str | None) -> None:
    command.upgrade(alembic_config(connection, schema), "head")

"""Alembic environment: runs on the connection handed over in ``config.attributes``.

``migrate.upgrade_to_head`` supplies an open connection and the target schema
(``None`` for SQLite); the version table lives in that schema too.
"""

from __future__ import annotations

from alembic import context

from test_coordinator.adapters.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through test_coordinator.adapters.storage.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=config.attributes.get("schema"),
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()

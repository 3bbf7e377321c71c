"""RunStore on SQLAlchemy async: SQLite (embedded) or PostgreSQL (asyncpg).

Used directly for SQLite; for PostgreSQL it is the ``Remote`` behind a
:class:`~test_coordinator.adapters.storage.buffered.BufferedWriter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.migrate import upgrade_to_head
from test_coordinator.adapters.storage.sql_errors import connected
from test_coordinator.adapters.storage.tables import journal_events, runs, undo_records
from test_coordinator.adapters.storage.writes import PendingWrite, WriteKind
from test_coordinator.ports.availability import StorageRejected
from test_coordinator.ports.storage import (
    JournalEvent,
    RunPage,
    RunQuery,
    RunRecord,
    UndoRecord,
    UndoStatus,
)

# Bound parameters per statement stay far below SQLite's and asyncpg's limits.
_ROWS_PER_INSERT = 1000


def _run_listing(query: RunQuery) -> sa.Select[Any]:
    """``query`` as SQL: its filters, newest first, ``limit + 1`` rows (the extra one
    tells there is a next page). The keyset condition is spelled so that a plain range
    on ``started_at_ms`` bounds the index scan on SQLite and PostgreSQL alike."""
    conditions: list[sa.ColumnElement[bool]] = []
    if query.scenario is not None:
        conditions.append(runs.c.scenario == query.scenario)
    if query.statuses:
        conditions.append(runs.c.status.in_(sorted(s.value for s in query.statuses)))
    if query.started_from_ms is not None:
        conditions.append(runs.c.started_at_ms >= query.started_from_ms)
    if query.started_to_ms is not None:
        conditions.append(runs.c.started_at_ms < query.started_to_ms)
    if query.before is not None:
        at, run_id = query.before.started_at_ms, query.before.run_id
        conditions.append(runs.c.started_at_ms <= at)
        conditions.append(sa.or_(runs.c.started_at_ms < at, runs.c.run_id < run_id))
    return (
        sa.select(runs)
        .where(*conditions)
        .order_by(runs.c.started_at_ms.desc(), runs.c.run_id.desc())
        .limit(query.limit + 1)
    )


class SqlRunStore:
    """Runs, journal events and undo records in the instance's schema (or SQLite file)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        name: str,
        schema: str | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.schema = schema
        self.owner = owner  # the instance the schema is claimed for (see upgrade_to_head)
        self._migrated = False

    async def migrate(self) -> None:
        """Create the schema if missing and bring its tables to the newest revision."""
        async with connected(self.engine, self.name) as connection:
            await upgrade_to_head(connection, self.schema, self.owner)
            await connection.commit()
        self._migrated = True

    async def ping(self) -> None:
        """Check the server answers; the first successful contact also migrates."""
        if not self._migrated:
            await self.migrate()
            return
        async with connected(self.engine, self.name) as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def apply(self, pending: Sequence[PendingWrite]) -> None:
        """Apply ``pending`` in order, in one transaction."""
        async with connected(self.engine, self.name) as connection:
            for write in pending:
                for statement in self._statements(write):
                    await connection.execute(statement)
            await connection.commit()

    async def save_run(self, run: RunRecord) -> None:
        await self.apply([writes.save_run(run)])

    async def append_events(self, events: Sequence[JournalEvent]) -> None:
        await self.apply([writes.append_events(events)])

    async def record_undo(self, undo: UndoRecord) -> None:
        await self.apply([writes.record_undo(undo)])

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None:
        await self.apply([writes.finish_undo(undo_id, status, detail)])

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._select(sa.select(runs).where(runs.c.run_id == run_id))
        return writes.run_from_row(rows[0]) if rows else None

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        if limit < 1:
            return []
        return list((await self.query_runs(RunQuery(limit=limit))).runs)

    async def query_runs(self, query: RunQuery) -> RunPage:
        rows = await self._select(_run_listing(query))
        return query.page([writes.run_from_row(row) for row in rows])

    async def events(self, run_id: str) -> list[JournalEvent]:
        query = (
            sa.select(journal_events)
            .where(journal_events.c.run_id == run_id)
            .order_by(journal_events.c.seq)
        )
        return [writes.event_from_row(row) for row in await self._select(query)]

    async def pending_undos(self, *, include_failed: bool = False) -> list[UndoRecord]:
        statuses = [UndoStatus.PENDING.value]
        if include_failed:
            statuses.append(UndoStatus.FAILED.value)
        query = (
            sa.select(undo_records)
            .where(undo_records.c.status.in_(statuses))
            .order_by(undo_records.c.created_at_ms, undo_records.c.undo_id)
        )
        return [writes.undo_from_row(row) for row in await self._select(query)]

    async def _select(self, query: sa.Select[Any]) -> list[Any]:
        async with connected(self.engine, self.name) as connection:
            result = await connection.execute(query)
            return [row._mapping for row in result]

    def _statements(self, write: PendingWrite) -> list[sa.Executable]:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        payload = write.payload
        if write.kind is WriteKind.SAVE_RUN:
            upsert = insert(runs).values(**payload)
            changed = {k: upsert.excluded[k] for k in payload if k != "run_id"}
            return [upsert.on_conflict_do_update(index_elements=["run_id"], set_=changed)]
        if write.kind is WriteKind.APPEND_EVENTS:
            rows = payload["events"]
            return [
                insert(journal_events)
                .values(rows[i : i + _ROWS_PER_INSERT])
                .on_conflict_do_nothing()
                for i in range(0, len(rows), _ROWS_PER_INSERT)
            ]
        if write.kind is WriteKind.RECORD_UNDO:
            upsert = insert(undo_records).values(**payload)
            changed = {k: upsert.excluded[k] for k in payload if k != "undo_id"}
            return [upsert.on_conflict_do_update(index_elements=["undo_id"], set_=changed)]
        if write.kind is WriteKind.FINISH_UNDO:
            finish = (
                sa.update(undo_records)
                .where(undo_records.c.undo_id == payload["undo_id"])
                .values(status=payload["status"], detail=payload["detail"])
            )
            return [finish]
        raise StorageRejected(f"{self.name}: a run store cannot apply {write.kind.value!r}")

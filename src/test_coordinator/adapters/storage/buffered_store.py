"""RunStore for PostgreSQL that keeps accepting writes while the server is down."""

from __future__ import annotations

from collections.abc import Sequence

from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.buffered import BufferedWriter
from test_coordinator.adapters.storage.sql_store import SqlRunStore
from test_coordinator.ports.storage import (
    JournalEvent,
    RunPage,
    RunQuery,
    RunRecord,
    UndoRecord,
    UndoStatus,
)


class BufferedRunStore:
    """Writes go through ``writer`` (outbox when down); reads raise StorageUnavailable when down."""

    def __init__(self, store: SqlRunStore, writer: BufferedWriter) -> None:
        self._store = store
        self._writer = writer

    async def save_run(self, run: RunRecord) -> None:
        await self._writer.write(writes.save_run(run))

    async def append_events(self, events: Sequence[JournalEvent]) -> None:
        if events:
            await self._writer.write(writes.append_events(events))

    async def record_undo(self, undo: UndoRecord) -> None:
        await self._writer.write(writes.record_undo(undo))

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None:
        await self._writer.write(writes.finish_undo(undo_id, status, detail))

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._writer.read(lambda: self._store.get_run(run_id))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        return await self._writer.read(lambda: self._store.list_runs(limit))

    async def query_runs(self, query: RunQuery) -> RunPage:
        return await self._writer.read(lambda: self._store.query_runs(query))

    async def events(self, run_id: str) -> list[JournalEvent]:
        return await self._writer.read(lambda: self._store.events(run_id))

    async def pending_undos(self, *, include_failed: bool = False) -> list[UndoRecord]:
        return await self._writer.read(
            lambda: self._store.pending_undos(include_failed=include_failed)
        )

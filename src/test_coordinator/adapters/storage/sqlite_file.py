"""RunStore on the standard library's sqlite3, for the embedded file of CLI runs.

The file's tables belong to the Alembic migrations: this store only reads and
writes rows, and opens a file only when it is already at :data:`HEAD_REVISION`.
A file that is new or older is migrated once through the SQLAlchemy stack
(:func:`open_sqlite_file`), after which every run opens it directly: a CLI run
then imports neither SQLAlchemy nor Alembic nor aiosqlite.

Rows look exactly as SQLAlchemy writes them (JSON columns as JSON text), so the
SQLAlchemy store and the service read what this store wrote, and the reverse.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.paths import SQLITE_FILE
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable
from test_coordinator.ports.storage import (
    JournalEvent,
    RunPage,
    RunQuery,
    RunRecord,
    UndoRecord,
    UndoStatus,
)

HEAD_REVISION = "0002"
"""The newest migration in ``migrations/versions`` (a test keeps the two equal)."""

BUSY_TIMEOUT_MS = 5000

_T = TypeVar("_T")

_RUN_COLUMNS = ("run_id", "scenario", "status", "started_at_ms", "ended_at_ms", "summary")
_EVENT_COLUMNS = ("run_id", "seq", "at_ms", "kind", "data")
_UNDO_COLUMNS = (
    "undo_id",
    "run_id",
    "target",
    "action",
    "status",
    "created_at_ms",
    "detail",
)
_JSON_COLUMNS = frozenset({"summary", "data", "action"})


def _upsert(table: str, columns: Sequence[str], key: str) -> str:
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {changed}"
    )


_SAVE_RUN = _upsert("runs", _RUN_COLUMNS, "run_id")
_RECORD_UNDO = _upsert("undo_records", _UNDO_COLUMNS, "undo_id")
_APPEND_EVENT = (
    f"INSERT INTO journal_events ({', '.join(_EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


def _run_listing(query: RunQuery) -> tuple[str, tuple[Any, ...]]:
    """The same SQL as ``sql_store``'s listing: filters, newest first, ``limit + 1`` rows."""
    conditions: list[str] = []
    params: list[Any] = []
    if query.scenario is not None:
        conditions.append("scenario = ?")
        params.append(query.scenario)
    if query.statuses:
        statuses = sorted(s.value for s in query.statuses)
        conditions.append(f"status IN ({', '.join('?' * len(statuses))})")
        params += statuses
    if query.started_from_ms is not None:
        conditions.append("started_at_ms >= ?")
        params.append(query.started_from_ms)
    if query.started_to_ms is not None:
        conditions.append("started_at_ms < ?")
        params.append(query.started_to_ms)
    if query.before is not None:
        at, run_id = query.before.started_at_ms, query.before.run_id
        conditions.append("started_at_ms <= ? AND (started_at_ms < ? OR run_id < ?)")
        params += [at, at, run_id]
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    sql = f"SELECT * FROM runs {where}ORDER BY started_at_ms DESC, run_id DESC LIMIT ?"
    return sql, (*params, query.limit + 1)


def _values(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(json.dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in columns)


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    names = [d[0] for d in cursor.description]
    return {
        name: json.loads(value) if name in _JSON_COLUMNS and value is not None else value
        for name, value in zip(names, values, strict=True)
    }


def revision_of(path: Path) -> str | None:
    """The Alembic revision of the file at ``path`` (None: missing, empty or not a database)."""
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


class SqliteFileRunStore:
    """Runs, journal events and undo records in an already migrated SQLite file.

    Each call runs in a worker thread on one connection, one call at a time, so a
    busy file (another coordinator, the guard) never blocks the event loop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def open(self) -> None:
        try:
            connection = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"sqlite: cannot open {self.path}: {exc}") from exc
        self._connection = connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    async def save_run(self, run: RunRecord) -> None:
        row = writes.run_to_row(run)
        await self._call(lambda c: c.execute(_SAVE_RUN, _values(row, _RUN_COLUMNS)))

    async def append_events(self, events: Sequence[JournalEvent]) -> None:
        rows = [_values(writes.event_to_row(e), _EVENT_COLUMNS) for e in events]
        if rows:
            await self._call(lambda c: c.executemany(_APPEND_EVENT, rows), transaction=True)

    async def record_undo(self, undo: UndoRecord) -> None:
        row = writes.undo_to_row(undo)
        await self._call(lambda c: c.execute(_RECORD_UNDO, _values(row, _UNDO_COLUMNS)))

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None:
        statement = "UPDATE undo_records SET status = ?, detail = ? WHERE undo_id = ?"
        await self._call(lambda c: c.execute(statement, (status.value, detail, undo_id)))

    async def get_run(self, run_id: str) -> RunRecord | None:
        rows = await self._select("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return writes.run_from_row(rows[0]) if rows else None

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        if limit < 1:
            return []
        return list((await self.query_runs(RunQuery(limit=limit))).runs)

    async def query_runs(self, query: RunQuery) -> RunPage:
        rows = await self._select(*_run_listing(query))
        return query.page([writes.run_from_row(row) for row in rows])

    async def events(self, run_id: str) -> list[JournalEvent]:
        query = "SELECT * FROM journal_events WHERE run_id = ? ORDER BY seq"
        return [writes.event_from_row(row) for row in await self._select(query, (run_id,))]

    async def pending_undos(self) -> list[UndoRecord]:
        query = "SELECT * FROM undo_records WHERE status = ? ORDER BY created_at_ms, undo_id"
        rows = await self._select(query, (UndoStatus.PENDING.value,))
        return [writes.undo_from_row(row) for row in rows]

    async def _select(self, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        def select(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = connection.execute(query, params)
            return [_row(cursor, values) for values in cursor.fetchall()]

        return await self._call(select)

    async def _call(
        self, work: Callable[[sqlite3.Connection], _T], *, transaction: bool = False
    ) -> _T:
        return await asyncio.to_thread(self._locked, work, transaction)

    def _locked(self, work: Callable[[sqlite3.Connection], _T], transaction: bool) -> _T:
        with self._lock:
            connection = self._connection
            if connection is None:
                raise StorageUnavailable(f"sqlite: {self.path} is closed")
            try:
                if not transaction:
                    return work(connection)
                connection.execute("BEGIN IMMEDIATE")
                try:
                    result = work(connection)
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
                return result
            except sqlite3.IntegrityError as exc:
                raise StorageRejected(f"sqlite: IntegrityError: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageUnavailable(f"sqlite: {self.path}: {exc}") from exc


async def open_sqlite_file(data_dir: Path) -> SqliteFileRunStore:
    """The run store in ``data_dir``, migrated first (through Alembic) when not at head."""
    path = data_dir / SQLITE_FILE
    if revision_of(path) != HEAD_REVISION:
        await _migrate(path)
    store = SqliteFileRunStore(path)
    store.open()
    return store


async def _migrate(path: Path) -> None:
    from test_coordinator.adapters.storage.engines import sqlite_engine
    from test_coordinator.adapters.storage.sql_store import SqlRunStore

    engine = sqlite_engine(path)
    try:
        await SqlRunStore(engine, name="sqlite").migrate()
    finally:
        await engine.dispose()

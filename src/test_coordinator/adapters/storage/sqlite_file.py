"""RunStore on the standard library's sqlite3, for the embedded file of CLI runs.

The file's tables belong to the Alembic migrations: this store only reads and
writes rows, and opens a file only when it is already at :data:`HEAD_REVISION`.
A new file is created at head from :data:`HEAD_SCHEMA` (the DDL the migrations
produce on SQLite; a test compares the two), an older one is migrated once
through the SQLAlchemy stack (:func:`open_sqlite_file`); after that every run
and every ``serve`` opens it directly, importing neither SQLAlchemy nor Alembic
nor aiosqlite.

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

HEAD_SCHEMA = (
    """CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))""",
    """CREATE TABLE runs (
    run_id TEXT NOT NULL, scenario TEXT NOT NULL, status VARCHAR(16) NOT NULL,
    started_at_ms BIGINT NOT NULL, ended_at_ms BIGINT, summary JSON NOT NULL,
    PRIMARY KEY (run_id))""",
    "CREATE INDEX ix_runs_started_at_ms ON runs (started_at_ms)",
    """CREATE TABLE journal_events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, at_ms BIGINT NOT NULL, kind TEXT NOT NULL,
    data JSON NOT NULL, PRIMARY KEY (run_id, seq))""",
    """CREATE TABLE undo_records (
    undo_id TEXT NOT NULL, run_id TEXT NOT NULL, target TEXT NOT NULL, action JSON NOT NULL,
    status VARCHAR(16) NOT NULL, created_at_ms BIGINT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (undo_id))""",
    "CREATE INDEX ix_undo_records_status ON undo_records (status)",
    "CREATE INDEX ix_undo_records_run_id ON undo_records (run_id)",
    "CREATE INDEX ix_runs_scenario_started_at_ms ON runs (scenario, started_at_ms, run_id)",
    "CREATE INDEX ix_runs_status_started_at_ms ON runs (status, started_at_ms, run_id)",
    f"INSERT INTO alembic_version (version_num) VALUES ('{HEAD_REVISION}')",
)
"""A new file at :data:`HEAD_REVISION`, as the migrations make it on SQLite."""

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
    try:
        row = _read_one(path, "SELECT version_num FROM alembic_version")
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _read_one(path: Path, query: str) -> tuple[Any, ...] | None:
    """The first row of ``query`` on the file opened read-only; None when there is no file."""
    if not path.is_file():
        return None
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        row: tuple[Any, ...] | None = connection.execute(query).fetchone()
        return row
    finally:
        connection.close()


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

    async def pending_undos(self, *, include_failed: bool = False) -> list[UndoRecord]:
        statuses = (UndoStatus.PENDING.value, UndoStatus.FAILED.value if include_failed else "")
        query = "SELECT * FROM undo_records WHERE status IN (?, ?) ORDER BY created_at_ms, undo_id"
        rows = await self._select(query, statuses)
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
    """The run store in ``data_dir``: a new file is created at head, an older one migrated
    first (through Alembic)."""
    path = data_dir / SQLITE_FILE
    await prepare_sqlite_file(path)
    store = SqliteFileRunStore(path)
    store.open()
    return store


async def prepare_sqlite_file(path: Path) -> None:
    """Bring the file at ``path`` to head: created at head when new, else migrated."""
    if not _has_tables(path):
        await asyncio.to_thread(create_at_head, path)
    if revision_of(path) != HEAD_REVISION:
        await _migrate(path)


def create_at_head(path: Path) -> None:
    """Create the file's tables at head in one transaction; nothing when another process
    (a guard, a second coordinator) created them first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            exists = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if not exists:
                for statement in HEAD_SCHEMA:
                    connection.execute(statement)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()


def _has_tables(path: Path) -> bool:
    try:
        row = _read_one(path, "SELECT count(*) FROM sqlite_master")
    except sqlite3.Error:
        return True  # not ours to overwrite: the migration says what is wrong with it
    return bool(row and row[0])


async def _migrate(path: Path) -> None:
    from test_coordinator.adapters.storage.engines import sqlite_engine
    from test_coordinator.adapters.storage.sql_store import SqlRunStore

    engine = sqlite_engine(path)
    try:
        await SqlRunStore(engine, name="sqlite").migrate()
    finally:
        await engine.dispose()

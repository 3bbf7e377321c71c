"""The audit correlator's events: in memory for queries, and in a SQLite file so that a
restart keeps them.

An event is written to the file (committed, WAL) before :meth:`EventStore.add`
returns, so an event the correlator acknowledged survives its crash. Each event
id is stored once: a batch the reporter sends again is harmless.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from test_coordinator.ports.audit import AuditEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    event_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    correlation_id TEXT,
    data TEXT NOT NULL
);
"""


class EventStoreError(Exception):
    """The events file cannot be opened or written."""


class EventStore:
    """Use :meth:`open`; ``path`` None keeps the events in memory only."""

    def __init__(self, path: Path | None, connection: aiosqlite.Connection | None) -> None:
        self.path = path
        self._db = connection
        self._events: list[AuditEvent] = []
        self._ids: set[str] = set()
        self._sorted = True
        self._closed = False

    @classmethod
    async def open(cls, path: Path | None) -> EventStore:
        """The store, with every event the file already holds."""
        if path is None:
            return cls(None, None)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.executescript(_SCHEMA)
            await connection.commit()
            rows = await connection.execute_fetchall(
                "SELECT event_id, source, kind, at_ms, correlation_id, data FROM audit_events"
            )
        except (OSError, sqlite3.Error) as exc:
            raise EventStoreError(f"cannot open the audit events file {path}: {exc}") from exc
        store = cls(path, connection)
        store._remember(
            [
                AuditEvent(
                    kind=kind,
                    at_ms_epoch=int(at_ms),
                    correlation_id=correlation_id,
                    source=source,
                    data=json.loads(data),
                    event_id=event_id,
                )
                for event_id, source, kind, at_ms, correlation_id, data in rows
            ]
        )
        return store

    def __len__(self) -> int:
        return len(self._events)

    async def add(self, events: Sequence[AuditEvent]) -> int:
        """Store the events not stored before; return how many were new."""
        if self._closed:
            raise EventStoreError("the audit event store is closed")
        fresh = list({e.event_id: e for e in events if e.event_id not in self._ids}.values())
        if not fresh:
            return 0
        if self._db is not None:
            try:
                await self._db.executemany(
                    "INSERT OR IGNORE INTO audit_events "
                    "(event_id, source, kind, at_ms, correlation_id, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.event_id,
                            e.source,
                            e.kind,
                            e.at_ms_epoch,
                            e.correlation_id,
                            json.dumps(dict(e.data), separators=(",", ":"), default=str),
                        )
                        for e in fresh
                    ],
                )
                await self._db.commit()
            except (OSError, sqlite3.Error) as exc:
                raise EventStoreError(f"cannot write the audit events file: {exc}") from exc
        return self._remember(fresh)

    def events(self) -> list[AuditEvent]:
        """Every event, oldest first."""
        if not self._sorted:
            self._events.sort(key=lambda e: e.at_ms_epoch)
            self._sorted = True
        return list(self._events)

    async def close(self) -> None:
        self._closed = True
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    def _remember(self, events: Sequence[AuditEvent]) -> int:
        added = 0
        for event in events:
            if event.event_id in self._ids:
                continue  # a concurrent add() stored it while this one was writing
            if self._events and event.at_ms_epoch < self._events[-1].at_ms_epoch:
                self._sorted = False
            self._ids.add(event.event_id)
            self._events.append(event)
            added += 1
        return added

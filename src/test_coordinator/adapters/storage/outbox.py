"""A durable, ordered queue of writes waiting for their server, in a local SQLite file.

Each append is committed (``synchronous=FULL``) before it returns, so a write the
caller was told is stored survives a crash. Entries leave the queue only after
the server has accepted them; one the server rejects for good (not for being
down) moves to ``dead_letters`` in the same file instead of blocking the queue.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from test_coordinator.adapters.storage.writes import PendingWrite
from test_coordinator.infrastructure.logging import get_logger

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_at_ms INTEGER NOT NULL
);
"""


class OutboxError(Exception):
    """The local outbox file cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    entry_id: int
    write: PendingWrite


class Outbox:
    """Use :meth:`open`; every method is a short local disk operation."""

    def __init__(self, path: Path, connection: aiosqlite.Connection) -> None:
        self.path = path
        self._db = connection

    @classmethod
    async def open(cls, path: Path) -> Outbox:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = await aiosqlite.connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            await connection.executescript(_SCHEMA)
            await connection.commit()
        except sqlite3.Error as exc:
            await connection.close()
            raise OutboxError(f"cannot prepare outbox {path}: {exc}") from exc
        return cls(path, connection)

    async def append(self, write: PendingWrite) -> None:
        try:
            await self._db.execute(
                "INSERT INTO pending_writes (body, created_at_ms) VALUES (?, ?)",
                (write.to_json(), _now_ms()),
            )
            await self._db.commit()
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot append to outbox {self.path}: {exc}") from exc

    async def peek(self, limit: int) -> list[OutboxEntry]:
        """The oldest ``limit`` entries, in the order they were appended."""
        async with self._db.execute(
            "SELECT id, body FROM pending_writes ORDER BY id LIMIT ?", (limit,)
        ) as cursor:
            rows = list(await cursor.fetchall())
        entries = []
        for entry_id, body in rows:
            try:
                entries.append(OutboxEntry(entry_id, PendingWrite.from_json(body)))
            except (ValueError, KeyError, TypeError) as exc:
                await self.dead_letter(entry_id, f"unreadable entry: {exc!r}")
        return entries

    async def remove_through(self, entry_id: int) -> None:
        """Forget every entry up to and including ``entry_id``: the server has them."""
        await self._db.execute("DELETE FROM pending_writes WHERE id <= ?", (entry_id,))
        await self._db.commit()

    async def dead_letter(self, entry_id: int, error: str) -> None:
        """Move one entry the server refuses for good out of the queue, keeping it."""
        log.error("outbox.dead_letter", outbox=str(self.path), entry_id=entry_id, error=error)
        await self._db.execute(
            "INSERT INTO dead_letters (id, body, error, failed_at_ms) "
            "SELECT id, body, ?, ? FROM pending_writes WHERE id = ?",
            (error, _now_ms(), entry_id),
        )
        await self._db.execute("DELETE FROM pending_writes WHERE id = ?", (entry_id,))
        await self._db.commit()

    async def count(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM pending_writes")

    async def dead_letter_count(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM dead_letters")

    async def close(self) -> None:
        await self._db.close()

    async def _scalar(self, sql: str) -> int:
        async with self._db.execute(sql) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


def _now_ms() -> int:
    return int(time.time() * 1000)

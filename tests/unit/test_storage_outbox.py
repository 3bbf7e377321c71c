"""The outbox: a durable FIFO of pending writes in a local SQLite file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from test_coordinator.adapters.storage.outbox import Outbox, OutboxError
from test_coordinator.adapters.storage.writes import PendingWrite, WriteKind


def write(ident: str) -> PendingWrite:
    return PendingWrite(WriteKind.SAVE_RUN, {"id": ident})


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    opened = await Outbox.open(tmp_path / "nested" / "outbox.db")
    yield opened
    await opened.close()


async def test_peek_returns_oldest_first_and_leaves_entries(outbox: Outbox) -> None:
    for ident in "abc":
        await outbox.append(write(ident))

    first = await outbox.peek(2)
    again = await outbox.peek(10)

    assert [write("a"), write("b")] == [entry.write for entry in first]
    assert [write("a"), write("b"), write("c")] == [entry.write for entry in again]


async def test_remove_through_forgets_only_delivered_entries(outbox: Outbox) -> None:
    for ident in "abc":
        await outbox.append(write(ident))
    delivered = await outbox.peek(2)

    await outbox.remove_through(delivered[-1].entry_id)

    assert [write("c")] == [entry.write for entry in await outbox.peek(10)]
    assert await outbox.count() == 1


async def test_entries_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    first = await Outbox.open(path)
    await first.append(write("a"))
    await first.close()

    second = await Outbox.open(path)
    try:
        assert [write("a")] == [entry.write for entry in await second.peek(10)]
    finally:
        await second.close()


async def test_dead_letter_moves_an_entry_aside(outbox: Outbox) -> None:
    for ident in "ab":
        await outbox.append(write(ident))
    first = (await outbox.peek(1))[0]

    await outbox.dead_letter(first.entry_id, "refused")

    assert [write("b")] == [entry.write for entry in await outbox.peek(10)]
    assert await outbox.dead_letter_count() == 1


async def test_an_unreadable_entry_is_set_aside_not_replayed(tmp_path: Path) -> None:
    """An entry from an incompatible version cannot block the queue."""
    path = tmp_path / "outbox.db"
    outbox = await Outbox.open(path)
    try:
        await outbox.append(write("a"))
        with contextlib.closing(sqlite3.connect(path)) as raw, raw:
            raw.execute("INSERT INTO pending_writes (body, created_at_ms) VALUES ('{\"x\":1}', 0)")
        await outbox.append(write("b"))

        entries = await outbox.peek(10)

        assert [write("a"), write("b")] == [entry.write for entry in entries]
        assert await outbox.dead_letter_count() == 1
    finally:
        await outbox.close()


async def test_an_unusable_path_is_our_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(OutboxError, match="cannot open outbox"):
        await Outbox.open(blocker / "outbox.db")

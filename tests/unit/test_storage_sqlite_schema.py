"""A new SQLite file is created at head without Alembic, and it is the same file the
migrations make: same tables, columns, keys, indexes and revision."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from test_coordinator.adapters.storage.sqlite_file import (
    HEAD_REVISION,
    _migrate,
    create_at_head,
    open_sqlite_file,
    revision_of,
)
from test_coordinator.ports.storage import RunRecord, RunStatus


def structure(path: Path) -> dict[str, Any]:
    connection = sqlite3.connect(str(path))
    try:
        tables = sorted(
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        )
        shape: dict[str, Any] = {}
        for table in tables:
            columns = [tuple(row[1:]) for row in connection.execute(f"PRAGMA table_info({table})")]
            indexes = {
                row[1]: (
                    row[2],
                    [info[2] for info in connection.execute(f"PRAGMA index_info({row[1]})")],
                )
                for row in connection.execute(f"PRAGMA index_list({table})")
            }
            shape[table] = (columns, indexes)
        shape["revision"] = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        return shape
    finally:
        connection.close()


async def test_the_file_made_without_alembic_is_the_one_alembic_makes(tmp_path: Path) -> None:
    by_alembic, by_hand = tmp_path / "alembic.db", tmp_path / "hand.db"
    await _migrate(by_alembic)
    create_at_head(by_hand)

    assert structure(by_alembic) == structure(by_hand)
    assert HEAD_REVISION == revision_of(by_hand)


async def test_a_new_file_is_created_at_head_and_kept_as_it_is(tmp_path: Path) -> None:
    store = await open_sqlite_file(tmp_path)
    record = RunRecord("r1", "s", RunStatus.QUEUED, 1, summary={"a": 1})
    await store.save_run(record)
    store.close()
    create_at_head(tmp_path / "coordinator.db")  # a second creator finds it made: no-op

    again = await open_sqlite_file(tmp_path)
    try:
        assert record == await again.get_run("r1")
    finally:
        again.close()

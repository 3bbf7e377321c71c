"""The run stores on the embedded SQLite file: SqlRunStore (SQLAlchemy, with the shipped
Alembic migrations) and SqliteFileRunStore (the standard library, what a CLI run uses).
Both must behave alike, on one file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from test_coordinator.adapters.storage.engines import sqlite_engine
from test_coordinator.adapters.storage.paths import SQLITE_FILE
from test_coordinator.adapters.storage.sql_store import SqlRunStore
from test_coordinator.adapters.storage.sqlite_file import (
    HEAD_REVISION,
    open_sqlite_file,
    revision_of,
)
from test_coordinator.adapters.storage.tables import metadata
from test_coordinator.ports.availability import StorageRejected
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    RunStore,
    UndoRecord,
    UndoStatus,
)


@pytest.fixture
async def sql_store(tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    engine = sqlite_engine(tmp_path / SQLITE_FILE)
    sql = SqlRunStore(engine, name="sqlite")
    await sql.migrate()
    yield sql
    await engine.dispose()


@pytest.fixture(params=["sqlalchemy", "sqlite3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunStore]:
    if request.param == "sqlalchemy":
        engine = sqlite_engine(tmp_path / SQLITE_FILE)
        sql = SqlRunStore(engine, name="sqlite")
        await sql.migrate()
        yield sql
        await engine.dispose()
        return
    light = await open_sqlite_file(tmp_path)
    yield light
    light.close()


def run(run_id: str, started_at_ms: int = 1, **changes: object) -> RunRecord:
    fields: dict[str, object] = {
        "run_id": run_id,
        "scenario": "kill-exchange",
        "status": RunStatus.RUNNING,
        "started_at_ms": started_at_ms,
    }
    fields.update(changes)
    return RunRecord(**fields)  # type: ignore[arg-type]


async def test_migrations_create_the_tables_and_record_their_revision(
    sql_store: SqlRunStore,
) -> None:
    async with sql_store.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        revision = await connection.scalar(sa.text("SELECT version_num FROM alembic_version"))

    assert set(metadata.tables) | {"alembic_version"} == tables
    assert revision


async def test_migrations_match_the_table_definitions(sql_store: SqlRunStore) -> None:
    """What the code queries (tables.py) is what the migrations built."""

    def columns(connection: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(connection)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in metadata.tables}

    async with sql_store.engine.connect() as connection:
        built = await connection.run_sync(columns)

    assert {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables} == built


async def test_migrating_twice_changes_nothing(sql_store: SqlRunStore) -> None:
    await sql_store.save_run(run("r1"))

    await sql_store.migrate()

    assert run("r1") == await sql_store.get_run("r1")


async def test_save_run_inserts_then_updates(store: RunStore) -> None:
    await store.save_run(run("r1", summary={"steps": 1}))
    finished = run("r1", status=RunStatus.PASSED, ended_at_ms=9, summary={"steps": 2})

    await store.save_run(finished)

    assert finished == await store.get_run("r1")
    assert await store.get_run("missing") is None


async def test_list_runs_newest_first_with_limit(store: RunStore) -> None:
    for index in range(5):
        await store.save_run(run(f"r{index}", started_at_ms=index))

    listed = await store.list_runs(limit=3)

    assert [r.run_id for r in listed] == ["r4", "r3", "r2"]


async def test_events_in_sequence_and_duplicates_ignored(store: RunStore) -> None:
    """Replaying an append (after a crash) must not fail nor duplicate events."""
    second = JournalEvent("r1", 2, 20, "probe", {"ok": True})
    first = JournalEvent("r1", 1, 10, "started")
    await store.append_events([second, first])

    await store.append_events([first])
    await store.append_events([])

    assert [first, second] == await store.events("r1")
    assert await store.events("other") == []


async def test_many_events_in_one_append(store: RunStore) -> None:
    events = [JournalEvent("r1", seq, seq, "tick") for seq in range(2500)]

    await store.append_events(events)

    assert events == await store.events("r1")


async def test_undo_records_until_finished(store: RunStore) -> None:
    early = UndoRecord("u1", "r1", "exchange-OKX", {"restart": True}, created_at_ms=1)
    late = UndoRecord("u2", "r1", "redis", {"unpause": True}, created_at_ms=2)
    await store.record_undo(late)
    await store.record_undo(early)

    await store.finish_undo("u2", UndoStatus.DONE, "restarted")
    await store.finish_undo("unknown", UndoStatus.FAILED)

    assert [early] == await store.pending_undos()


async def test_a_refused_write_is_our_error(store: RunStore, tmp_path: Path) -> None:
    """A constraint violation is StorageRejected (not an outage), naming the store."""
    with contextlib.closing(sqlite3.connect(tmp_path / SQLITE_FILE)) as connection:
        connection.execute(
            "CREATE TRIGGER no_runs BEFORE INSERT ON runs "
            "BEGIN SELECT RAISE(ABORT, 'runs are frozen'); END"
        )
        connection.commit()

    with pytest.raises(StorageRejected, match="sqlite: IntegrityError: runs are frozen"):
        await store.save_run(run("r1"))


async def test_each_store_reads_what_the_other_wrote(
    sql_store: SqlRunStore, tmp_path: Path
) -> None:
    """One file, one schema: the service reads the CLI's runs, and the reverse."""
    light = await open_sqlite_file(tmp_path)
    try:
        summary = {"steps": [1, 2], "nested": {"ok": True}}
        await light.save_run(run("cli", summary=summary))
        await light.append_events([JournalEvent("cli", 1, 5, "started", {"a": [1]})])
        await light.record_undo(UndoRecord("u1", "cli", "svc", {"kind": "start"}))
        await sql_store.save_run(run("service", started_at_ms=2))

        assert await sql_store.get_run("cli") == run("cli", summary=summary)
        assert await sql_store.events("cli") == await light.events("cli")
        assert await sql_store.pending_undos() == await light.pending_undos()
        assert [r.run_id for r in await light.list_runs()] == ["service", "cli"]
    finally:
        light.close()


async def test_a_new_file_is_migrated_to_the_head_revision(tmp_path: Path) -> None:
    light = await open_sqlite_file(tmp_path / "instance")
    light.close()

    assert revision_of(tmp_path / "instance" / SQLITE_FILE) == HEAD_REVISION


def test_the_light_store_knows_the_newest_migration() -> None:
    """HEAD_REVISION must follow the migrations, or every run would migrate again."""
    from alembic.script import ScriptDirectory

    from test_coordinator.adapters.storage.migrate import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_a_file_that_is_not_a_database_has_no_revision(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_text("not sqlite")

    assert revision_of(tmp_path / "junk.db") is None
    assert revision_of(tmp_path / "missing.db") is None

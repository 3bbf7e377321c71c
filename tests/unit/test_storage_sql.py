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

from support.run_store_contract import RunStoreContract, ids, run
from test_coordinator.adapters.storage import sqlite_file
from test_coordinator.adapters.storage.buffered import BufferedWriter
from test_coordinator.adapters.storage.buffered_store import BufferedRunStore
from test_coordinator.adapters.storage.engines import sqlite_engine
from test_coordinator.adapters.storage.migrate import alembic_config
from test_coordinator.adapters.storage.paths import SQLITE_FILE
from test_coordinator.adapters.storage.remote import ReconnectPolicy
from test_coordinator.adapters.storage.sql_store import SqlRunStore
from test_coordinator.adapters.storage.sqlite_file import (
    HEAD_REVISION,
    open_sqlite_file,
    revision_of,
)
from test_coordinator.adapters.storage.tables import metadata
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable
from test_coordinator.ports.storage import (
    JournalEvent,
    RunCursor,
    RunQuery,
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


class TestRunStoreContract(RunStoreContract):
    """Every RunStore test, on both stores of the SQLite file (the ``store`` fixture)."""


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


async def test_migrations_build_the_indexes_of_the_table_definitions(
    sql_store: SqlRunStore,
) -> None:
    def indexes(connection: sa.Connection) -> dict[str, dict[str, tuple[str, ...]]]:
        inspector = sa.inspect(connection)
        return {
            t: {
                str(i["name"]): tuple(map(str, i["column_names"])) for i in inspector.get_indexes(t)
            }
            for t in metadata.tables
        }

    async with sql_store.engine.connect() as connection:
        built = await connection.run_sync(indexes)

    declared = {
        t.name: {str(i.name): tuple(c.name for c in i.columns) for i in t.indexes}
        for t in metadata.sorted_tables
    }
    assert declared == built
    assert built["runs"]["ix_runs_scenario_started_at_ms"] == (
        "scenario",
        "started_at_ms",
        "run_id",
    )


async def test_migrating_twice_changes_nothing(sql_store: SqlRunStore) -> None:
    await sql_store.save_run(run("r1"))

    await sql_store.migrate()

    assert run("r1") == await sql_store.get_run("r1")


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
        await light.record_undo(UndoRecord("u2", "cli", "svc", {"kind": "heal"}, created_at_ms=2))
        await light.finish_undo("u2", UndoStatus.FAILED, "no answer")
        await sql_store.save_run(run("service", started_at_ms=2))

        assert await sql_store.get_run("cli") == run("cli", summary=summary)
        assert await sql_store.events("cli") == await light.events("cli")
        assert ["u1"] == [u.undo_id for u in await sql_store.pending_undos()]
        assert await sql_store.pending_undos() == await light.pending_undos()
        retried = await light.pending_undos(include_failed=True)
        assert [("u1", UndoStatus.PENDING), ("u2", UndoStatus.FAILED)] == [
            (u.undo_id, u.status) for u in retried
        ]
        assert await sql_store.pending_undos(include_failed=True) == retried
        assert [r.run_id for r in await light.list_runs()] == ["service", "cli"]
    finally:
        light.close()


async def test_each_store_lists_what_the_other_wrote(
    sql_store: SqlRunStore, tmp_path: Path
) -> None:
    """The new statuses and the listing, across the two stores of one file."""
    light = await open_sqlite_file(tmp_path)
    try:
        await light.save_run(run("cli-queued", 3, status=RunStatus.QUEUED, scenario="s"))
        await light.save_run(run("cli-passed", 2, status=RunStatus.PASSED, scenario="s"))
        await sql_store.save_run(run("svc-cancelled", 4, status=RunStatus.CANCELLED, scenario="s"))
        await sql_store.save_run(run("svc-other", 5, scenario="t"))
        query = RunQuery(
            scenario="s", statuses=frozenset({RunStatus.QUEUED, RunStatus.CANCELLED}), limit=1
        )

        for store in (light, sql_store):
            first = await store.query_runs(query)
            assert ids(first.runs) == ["svc-cancelled"] and first.next is not None
            rest = await store.query_runs(
                RunQuery(scenario="s", statuses=query.statuses, before=first.next)
            )
            assert ids(rest.runs) == ["cli-queued"] and rest.next is None
        assert await sql_store.get_run("cli-queued") == await light.get_run("cli-queued")
    finally:
        light.close()


async def test_a_file_at_the_first_revision_is_migrated_keeping_its_runs(
    tmp_path: Path,
) -> None:
    """A CLI file written before the listing indexes gets them on its next open."""
    path = tmp_path / SQLITE_FILE
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            from alembic import command

            command.upgrade(alembic_config(connection, None), "0001")
    finally:
        engine.dispose()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "INSERT INTO runs VALUES ('old', 'kill-exchange', 'passed', 7, 9, '{\"a\": 1}')"
        )
        connection.commit()
    assert revision_of(path) == "0001"

    light = await open_sqlite_file(tmp_path)
    try:
        assert revision_of(path) == HEAD_REVISION
        page = await light.query_runs(RunQuery(scenario="kill-exchange"))
        assert page.runs == (
            run("old", 7, status=RunStatus.PASSED, ended_at_ms=9, summary={"a": 1}),
        )
    finally:
        light.close()


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (RunQuery(scenario="s"), "ix_runs_scenario_started_at_ms"),
        (RunQuery(scenario="s", before=RunCursor(5, "r")), "ix_runs_scenario_started_at_ms"),
        (RunQuery(statuses=frozenset({RunStatus.QUEUED})), "ix_runs_status_started_at_ms"),
        (RunQuery(before=RunCursor(5, "r")), "ix_runs_started_at_ms"),
        (RunQuery(started_from_ms=1, started_to_ms=9), "ix_runs_started_at_ms"),
    ],
)
async def test_a_listing_searches_an_index(
    sql_store: SqlRunStore, tmp_path: Path, query: RunQuery, index: str
) -> None:
    """No listing reads the whole table: each is a range of an index."""
    sql, params = sqlite_file._run_listing(query)
    with contextlib.closing(sqlite3.connect(tmp_path / SQLITE_FILE)) as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    assert any(step.startswith(("SEARCH", "SCAN")) and index in step for step in plan), plan
    assert not any(step == "SCAN runs" for step in plan), plan


async def test_the_buffered_store_lists_through_the_server_and_refuses_while_it_is_down(
    sql_store: SqlRunStore, tmp_path: Path
) -> None:
    """Like list_runs and get_run: answered by the server, StorageUnavailable without it."""
    policy = ReconnectPolicy(check_interval_s=60, first_backoff_s=60, max_backoff_s=60)
    writer = BufferedWriter("sqlite", sql_store, tmp_path / "outbox.db", policy)
    buffered = BufferedRunStore(sql_store, writer)
    await sql_store.save_run(run("r1", 1, status=RunStatus.QUEUED))

    with pytest.raises(StorageUnavailable, match="sqlite is unavailable"):
        await buffered.query_runs(RunQuery())

    await writer.start()
    try:
        page = await buffered.query_runs(RunQuery(statuses=frozenset({RunStatus.QUEUED})))
        assert ids(page.runs) == ["r1"]
    finally:
        await writer.close()


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

"""The data adapter against a real PostgreSQL: per-instance schemas, migrations, and
writes that survive an outage (cut with a TCP proxy) and a restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from support.polling import eventually
from support.tcp_proxy import TcpProxy
from test_coordinator.adapters.storage import DataAdapter, ReconnectPolicy, StorageUnavailable
from test_coordinator.config import Settings
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    UndoRecord,
    UndoStatus,
)

pytestmark = pytest.mark.postgres

FAST = ReconnectPolicy(
    check_interval_s=0.1, first_backoff_s=0.05, max_backoff_s=0.3, connect_timeout_s=1.0
)
TABLES = {"alembic_version", "runs", "journal_events", "undo_records"}


def settings(data_dir: Path, postgres_url: str, **values: object) -> Settings:
    fields: dict[str, object] = {
        "data_dir": data_dir,
        "postgres_url": postgres_url,
        "redis_url": None,
        "postgres_schema": None,
    }
    fields.update(values)
    return Settings(**fields)  # type: ignore[arg-type]


def plain(url: str) -> str:
    """The URL as libpq and asyncpg.connect() write it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def postgres_health(adapter: DataAdapter) -> DependencyHealth:
    return next(h for h in adapter.dependency_health() if h.name == "postgres")


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own, so the derived schema names can be used as they are."""
    name = f"tc_it_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain(postgres_url), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = postgres_url.rpartition("/")
        yield f"{base}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    """A unique schema in the shared test database, dropped afterwards."""
    name = f"it_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(plain(postgres_url), timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """Ask the server directly, not through the adapter or the proxy."""
    connection = await asyncpg.connect(plain(url), timeout=5)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def stored_run(adapter: DataAdapter, run_id: str) -> RunRecord:
    run = await adapter.runs.get_run(run_id)
    assert run is not None, f"run {run_id} not found"
    return run


async def tables_by_schema(url: str) -> dict[str, set[str]]:
    rows = await fetch(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_schema"], set()).add(row["table_name"])
    return found


async def test_two_instances_keep_to_their_own_schemas(database_url: str, tmp_path: Path) -> None:
    """The singleton and test-coordinator-Chaos1 share one database: each gets its derived
    schema (created on start) with every table, Alembic's included, and sees only its runs."""
    singleton = DataAdapter.from_settings(settings(tmp_path, plain(database_url)))
    chaos = DataAdapter.from_settings(
        settings(tmp_path, database_url, service_instance_name="test-coordinator-Chaos1")
    )
    try:
        await singleton.start()
        await chaos.start()
        await singleton.runs.save_run(RunRecord("r1", "singleton-scenario", RunStatus.RUNNING, 1))
        await chaos.runs.save_run(RunRecord("r1", "chaos-scenario", RunStatus.PASSED, 2))

        tables = await tables_by_schema(database_url)
        assert tables == {"test": TABLES, "test_coordinator_chaos1": TABLES}
        assert (await stored_run(singleton, "r1")).scenario == "singleton-scenario"
        assert [r.scenario for r in await chaos.runs.list_runs()] == ["chaos-scenario"]
        assert [h.healthy for h in (postgres_health(singleton), postgres_health(chaos))] == [
            True,
            True,
        ]
    finally:
        await singleton.close()
        await chaos.close()


async def test_restarting_an_instance_keeps_its_data(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    first = DataAdapter.from_settings(settings(tmp_path, postgres_url, postgres_schema=schema))
    await first.start()
    await first.runs.append_events([JournalEvent("r1", 1, 10, "started", {"by": "test"})])
    await first.close()

    second = DataAdapter.from_settings(settings(tmp_path, postgres_url, postgres_schema=schema))
    try:
        await second.start()
        assert [JournalEvent("r1", 1, 10, "started", {"by": "test"})] == await second.runs.events(
            "r1"
        )
        versions = await fetch(postgres_url, f'SELECT version_num FROM "{schema}".alembic_version')
        assert len(versions) == 1
    finally:
        await second.close()


@pytest.mark.slow
async def test_an_outage_degrades_health_and_loses_no_write(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    """Cut the connection: health turns degraded, writes are accepted, reads refused.
    Restore it: health recovers by itself and the server has every write, in order."""
    async with TcpProxy.for_url(postgres_url, 5432) as proxy:
        via_proxy = settings(tmp_path, proxy.rewrite(postgres_url), postgres_schema=schema)
        adapter = DataAdapter.from_settings(via_proxy, policy=FAST)
        try:
            await adapter.start()
            assert postgres_health(adapter).healthy
            undo = UndoRecord("u1", "r1", "exchange-OKX", {"restart": True}, created_at_ms=1)
            await adapter.runs.record_undo(undo)

            await proxy.cut()
            await eventually(lambda: not postgres_health(adapter).healthy, what="degraded")
            await adapter.runs.save_run(RunRecord("r1", "s", RunStatus.RUNNING, 1))
            await adapter.runs.append_events([JournalEvent("r1", 1, 2, "fault-injected")])
            await adapter.runs.finish_undo("u1", UndoStatus.DONE, "restarted")
            await adapter.runs.save_run(RunRecord("r1", "s", RunStatus.PASSED, 1, 3))
            with pytest.raises(StorageUnavailable):
                await adapter.runs.get_run("r1")
            assert await fetch(postgres_url, f'SELECT 1 FROM "{schema}".runs') == []

            await proxy.restore()
            await eventually(lambda: postgres_health(adapter).healthy, what="recovered")
        finally:
            await adapter.close()

    runs = await fetch(postgres_url, f'SELECT run_id, status FROM "{schema}".runs')
    events = await fetch(postgres_url, f'SELECT kind FROM "{schema}".journal_events')
    undos = await fetch(postgres_url, f'SELECT status, detail FROM "{schema}".undo_records')
    assert [tuple(r) for r in runs] == [("r1", "passed")]
    assert [tuple(r) for r in events] == [("fault-injected",)]
    assert [tuple(r) for r in undos] == [("done", "restarted")]


@pytest.mark.slow
async def test_writes_buffered_before_a_restart_reach_the_server_after_it(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    """The outbox is on disk: a process that stops during an outage loses nothing."""
    async with TcpProxy.for_url(postgres_url, 5432) as proxy:
        via_proxy = settings(tmp_path, proxy.rewrite(postgres_url), postgres_schema=schema)
        await proxy.cut()
        before = DataAdapter.from_settings(via_proxy, policy=FAST)
        await before.start()
        await before.runs.save_run(RunRecord("r1", "s", RunStatus.ABORTED, 1, 2))
        await before.close()

        await proxy.restore()
        after = DataAdapter.from_settings(via_proxy, policy=FAST)
        try:
            await after.start()
            assert postgres_health(after).healthy
            assert (await stored_run(after, "r1")).status == RunStatus.ABORTED
        finally:
            await after.close()


async def test_instance_names_differing_only_in_case_cannot_share_their_schema(
    database_url: str, tmp_path: Path
) -> None:
    """Both derive test_coordinator_case1: the first to start claims it; the second keeps
    serving, with its store down and its health saying why, and never sees the first's
    runs."""
    first = DataAdapter.from_settings(
        settings(tmp_path / "a", database_url, service_instance_name="test-coordinator-Case1")
    )
    second = DataAdapter.from_settings(
        settings(tmp_path / "b", database_url, service_instance_name="test-coordinator-CASE1")
    )
    try:
        await first.start()
        await first.runs.save_run(RunRecord("r1", "first-scenario", RunStatus.RUNNING, 1))
        await second.start()

        health = postgres_health(second)
        assert not health.healthy
        assert "belongs to the instance 'test-coordinator-Case1'" in health.detail
        with pytest.raises(StorageUnavailable):
            await second.runs.list_runs()
        assert postgres_health(first).healthy
    finally:
        await first.close()
        await second.close()

"""The RunStore contract (tests/support/run_store_contract.py) on a real PostgreSQL, in a
schema of its own: the SQLAlchemy store as such, and behind the service's buffered
writer (what ``serve`` uses). Without a server these skip locally and fail with CI=true."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from support.run_store_contract import RunStoreContract, run
from test_coordinator.adapters.storage import DataAdapter, writes
from test_coordinator.adapters.storage.engines import postgres_engine
from test_coordinator.adapters.storage.sql_store import SqlRunStore, _run_listing
from test_coordinator.config import Settings
from test_coordinator.ports.storage import RunCursor, RunQuery, RunStatus, RunStore

pytestmark = pytest.mark.postgres


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[str]:
    name = f"it_{uuid.uuid4().hex[:12]}"
    yield name
    connection = await asyncpg.connect(plain(postgres_url), timeout=5)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
async def sql_store(postgres_url: str, schema: str) -> AsyncIterator[SqlRunStore]:
    async with migrated_store(postgres_url, schema) as sql:
        yield sql


@contextlib.asynccontextmanager
async def migrated_store(postgres_url: str, schema: str) -> AsyncIterator[SqlRunStore]:
    engine = postgres_engine(
        postgres_url,
        schema=schema,
        application_name="tc-contract-test",
        connect_timeout_s=5,
        command_timeout_s=10,
    )
    try:
        sql = SqlRunStore(engine, name="postgres", schema=schema)
        await sql.migrate()
        yield sql
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlalchemy", "buffered"])
async def store(
    request: pytest.FixtureRequest, postgres_url: str, schema: str, tmp_path: Path
) -> AsyncIterator[RunStore]:
    if request.param == "sqlalchemy":
        async with migrated_store(postgres_url, schema) as sql:
            yield sql
        return
    settings = Settings(
        data_dir=tmp_path,
        postgres_url=postgres_url,
        redis_url=None,
        postgres_schema=schema,
    )
    adapter = DataAdapter.from_settings(settings)
    await adapter.start()
    try:
        yield adapter.runs
    finally:
        await adapter.close()


class TestRunStoreContractOnPostgres(RunStoreContract):
    """Every RunStore test, on PostgreSQL."""


async def test_the_listing_indexes_are_in_the_instance_schema(
    sql_store: SqlRunStore, postgres_url: str, schema: str
) -> None:
    connection = await asyncpg.connect(plain(postgres_url), timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
            "AND tablename = 'runs'",
            schema,
        )
        version = await connection.fetchval(f'SELECT version_num FROM "{schema}".alembic_version')
    finally:
        await connection.close()

    definitions = {row["indexname"]: row["indexdef"] for row in rows}
    assert "(scenario, started_at_ms, run_id)" in definitions["ix_runs_scenario_started_at_ms"]
    assert "(status, started_at_ms, run_id)" in definitions["ix_runs_status_started_at_ms"]
    assert version == "0002"


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(scenario="s7", limit=3),
        RunQuery(scenario="s7", limit=3, before=RunCursor(900, "r")),
    ],
)
async def test_a_scenario_listing_reads_its_index_in_order(
    sql_store: SqlRunStore, schema: str, query: RunQuery
) -> None:
    """One scenario's page can be a backward range of its index: no sort of its runs
    (the planner is left only the plans the index allows, so this does not depend on
    the table's size)."""
    await sql_store.apply(
        [writes.save_run(run(f"r{i:04}", i, scenario=f"s{i % 20}")) for i in range(200)]
    )
    statement = _run_listing(query).compile(
        dialect=sql_store.engine.dialect,
        schema_translate_map={None: schema},
        render_schema_translate=True,
        compile_kwargs={"literal_binds": True},
    )
    async with sql_store.engine.connect() as connection:
        await connection.exec_driver_sql(f'ANALYZE "{schema}".runs')
        for kind in ("seqscan", "bitmapscan", "sort"):  # only what the index gives
            await connection.exec_driver_sql(f"SET LOCAL enable_{kind} = off")
        result = await connection.exec_driver_sql(f"EXPLAIN {statement}")
        plan = "\n".join(str(row[0]) for row in result)

    assert "Index Scan Backward using ix_runs_scenario_started_at_ms" in plan, plan
    assert "Sort" not in plan, plan
    page = await sql_store.query_runs(query)
    assert [r.scenario for r in page.runs] == ["s7"] * 3


async def test_a_queued_run_written_by_the_service_reads_back(sql_store: SqlRunStore) -> None:
    await sql_store.save_run(run("q", 5, status=RunStatus.QUEUED, summary={"seed": 1}))

    assert await sql_store.get_run("q") == run("q", 5, status=RunStatus.QUEUED, summary={"seed": 1})

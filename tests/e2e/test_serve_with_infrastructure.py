"""The service against real PostgreSQL and Redis: isolation between instances, and outages."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

from support.service_process import ServiceProcess, start_service, wait_for
from support.threaded_proxy import ThreadedProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

REGISTRY_DB = 14  # apart from the adapter tests' database 15


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _sql(url: str, query: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(_plain(url), timeout=5)
        try:
            return list(await conn.fetch(query))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def database(postgres_url: str) -> Iterator[str]:
    """A database of its own, so the exact schema names of the contract can be used."""
    name = f"tc_e2e_{uuid.uuid4().hex[:10]}"
    _sql(postgres_url, f"CREATE DATABASE {name}")
    yield _with_database(postgres_url, name)
    _sql(postgres_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    url = urlunsplit(urlsplit(redis_url)._replace(path=f"/{REGISTRY_DB}"))
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("services:test-coordinator:*"):
        client.delete(key)
    yield url
    client.close()


def _tables_by_schema(url: str) -> dict[str, set[str]]:
    rows = _sql(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('test', 'test_coordinator_chaos1')",
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_schema"], set()).add(row["table_name"])
    return found


def test_singleton_and_named_instance_share_servers_but_not_storage(
    tmp_path: Path, database: str, redis_db: str
) -> None:
    """Schemas test and test_coordinator_chaos1; both instances discoverable, then deregistered."""
    env = {"POSTGRES_URL": _plain(database), "REDIS_URL": redis_db}
    services: list[ServiceProcess] = []
    try:
        services.append(start_service(tmp_path / "singleton", env))
        services.append(
            start_service(
                tmp_path / "chaos1", {**env, "SERVICE_INSTANCE_NAME": "test-coordinator-Chaos1"}
            )
        )
        tables = _tables_by_schema(database)
        assert {"test", "test_coordinator_chaos1"} == set(tables)
        assert tables["test"] == tables["test_coordinator_chaos1"]
        assert "alembic_version" in tables["test"]

        client = redis.Redis.from_url(redis_db, decode_responses=True)
        keys = sorted(client.scan_iter("services:test-coordinator:*"))
        assert keys == [
            "services:test-coordinator:test-coordinator",
            "services:test-coordinator:test-coordinator-Chaos1",
        ]
        record = json.loads(client.get("services:test-coordinator:test-coordinator-Chaos1") or "")
        assert record["grpc_port"] == services[1].grpc_port
        assert record["http_port"] == services[1].http_port
        assert 0 < client.ttl("services:test-coordinator:test-coordinator-Chaos1") <= 30
    finally:
        codes = [s.stop() for s in services]

    assert codes == [0, 0]
    assert [] == list(client.scan_iter("services:test-coordinator:*"))
    client.close()


def _health(service: ServiceProcess) -> dict[str, object]:
    response = service.get("/api/v1/health")
    assert response.status_code == 200
    return dict(response.json())


@pytest.mark.parametrize("dependency", ["redis", "postgres"])
def test_outage_degrades_health_and_recovers_by_itself(
    tmp_path: Path, database: str, redis_db: str, dependency: str
) -> None:
    """With one server cut off the service answers, says degraded, and heals when it returns."""
    target = redis_db if dependency == "redis" else _plain(database)
    proxy = ThreadedProxy(target, 6379 if dependency == "redis" else 5432)
    env = {
        "POSTGRES_URL": _plain(database),
        "REDIS_URL": redis_db,
        ("REDIS_URL" if dependency == "redis" else "POSTGRES_URL"): proxy.rewrite(target),
    }
    service = start_service(tmp_path, env)
    try:
        wait_for(lambda: _health(service)["status"] == "healthy", deadline_s=10, what="healthy")

        proxy.cut()
        degraded = wait_for(
            lambda: (h := _health(service))["status"] == "degraded" and h,
            deadline_s=15,
            what=f"degraded while {dependency} is down",
        )
        assert degraded["failing"] == [dependency]
        assert service.get("/metrics").status_code == 200
        assert service.get("/api/v1/ready").status_code == 200

        proxy.restore()
        wait_for(
            lambda: _health(service)["status"] == "healthy",
            deadline_s=15,
            what=f"healthy after {dependency} returned",
        )
    finally:
        service.stop()
        proxy.close()
    assert "password" not in service.log().lower()

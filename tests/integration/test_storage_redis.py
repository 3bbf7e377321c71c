"""Live run state in a real Redis: namespaced keys per instance, and updates that
survive an outage (cut with a TCP proxy)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from support.polling import eventually
from support.tcp_proxy import TcpProxy
from test_coordinator.adapters.storage import DataAdapter, ReconnectPolicy, StorageUnavailable
from test_coordinator.config import Settings
from test_coordinator.ports.health import DependencyHealth
from test_coordinator.ports.live_state import LiveRun, LiveState
from test_coordinator.ports.storage import RunStatus

pytestmark = pytest.mark.redis

FAST = ReconnectPolicy(
    check_interval_s=0.1, first_backoff_s=0.05, max_backoff_s=0.3, connect_timeout_s=1.0
)


def settings(data_dir: Path, redis_url: str, **values: object) -> Settings:
    fields: dict[str, object] = {
        "data_dir": data_dir,
        "postgres_url": None,
        "redis_url": redis_url,
        "redis_namespace": None,
    }
    fields.update(values)
    return Settings(**fields)  # type: ignore[arg-type]


def redis_health(adapter: DataAdapter) -> DependencyHealth:
    return next(h for h in adapter.dependency_health() if h.name == "redis")


def live(adapter: DataAdapter) -> LiveState:
    assert adapter.live is not None
    return adapter.live


def marker() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def forget(redis: Redis, mark: str) -> None:
    """Remove what a test wrote: keys holding its marker, its ids in the active sets."""
    async for key in redis.scan_iter(match=f"*{mark}*"):
        await redis.delete(key)
    async for key in redis.scan_iter(match="*:runs:active"):
        members = [m for m in await redis.smembers(key) if mark in m]
        if members:
            await redis.srem(key, *members)


async def test_two_instances_write_under_their_own_namespaces(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """The singleton writes under ``test:``, test-coordinator-Chaos1 under
    ``test_coordinator:Chaos1:``; neither sees the other's runs."""
    mark = marker()
    singleton = DataAdapter.from_settings(settings(tmp_path, redis_url))
    chaos = DataAdapter.from_settings(
        settings(tmp_path, redis_url, service_instance_name="test-coordinator-Chaos1")
    )
    try:
        await singleton.start()
        await chaos.start()
        await live(singleton).publish(LiveRun(f"a-{mark}", "s", RunStatus.RUNNING, 1))
        await live(chaos).publish(LiveRun(f"b-{mark}", "s", RunStatus.RUNNING, 1))

        keys = {key async for key in redis.scan_iter(match=f"*{mark}*")}
        assert {f"test:runs:a-{mark}", f"test_coordinator:Chaos1:runs:b-{mark}"} == keys
        assert await redis.sismember("test:runs:active", f"a-{mark}")
        assert await redis.sismember("test_coordinator:Chaos1:runs:active", f"b-{mark}")
        assert await live(chaos).get(f"a-{mark}") is None
        assert f"b-{mark}" not in {run.run_id for run in await live(singleton).active()}
    finally:
        await singleton.close()
        await chaos.close()
        await forget(redis, mark)


async def test_every_key_is_under_the_namespace(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """Nothing is written outside ``{namespace}:``. Active runs join the active set and
    do not expire; finished ones leave it and expire."""
    namespace = f"it{marker()}"
    adapter = DataAdapter.from_settings(settings(tmp_path, redis_url, redis_namespace=namespace))
    try:
        await adapter.start()
        running = LiveRun("r1", "s", RunStatus.RUNNING, 1)
        await live(adapter).publish(running)
        await live(adapter).publish(LiveRun("r2", "s", RunStatus.RUNNING, 1))
        finished = LiveRun("r2", "s", RunStatus.FAILED, 2)
        await live(adapter).publish(finished)

        keys = {key async for key in redis.scan_iter(match=f"*{namespace}*")}
        assert {f"{namespace}:runs:active", f"{namespace}:runs:r1", f"{namespace}:runs:r2"} == keys
        assert [running] == await live(adapter).active()
        assert finished == await live(adapter).get("r2")
        assert await redis.ttl(f"{namespace}:runs:r1") == -1
        assert await redis.ttl(f"{namespace}:runs:r2") > 0
    finally:
        await adapter.close()
        await forget(redis, namespace)


@pytest.mark.slow
async def test_an_outage_degrades_health_and_loses_no_update(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    namespace = f"it{marker()}"
    async with TcpProxy.for_url(redis_url, 6379) as proxy:
        via_proxy = settings(tmp_path, proxy.rewrite(redis_url), redis_namespace=namespace)
        adapter = DataAdapter.from_settings(via_proxy, policy=FAST)
        try:
            await adapter.start()
            assert redis_health(adapter).healthy

            await proxy.cut()
            await eventually(lambda: not redis_health(adapter).healthy, what="degraded")
            await live(adapter).publish(LiveRun("r1", "s", RunStatus.RUNNING, 1))
            await live(adapter).publish(LiveRun("r1", "s", RunStatus.PASSED, 2))
            await live(adapter).publish(LiveRun("r2", "s", RunStatus.RUNNING, 3))
            with pytest.raises(StorageUnavailable):
                await live(adapter).active()
            assert not await redis.exists(f"{namespace}:runs:r1")

            await proxy.restore()
            await eventually(lambda: redis_health(adapter).healthy, what="recovered")
        finally:
            await adapter.close()
    try:
        assert {"r2"} == await redis.smembers(f"{namespace}:runs:active")
        assert await redis.hget(f"{namespace}:runs:r1", "status") == "passed"
    finally:
        await forget(redis, namespace)

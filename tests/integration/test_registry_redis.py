"""The Redis service registry: ``services:{service}:{instance}`` with a TTL kept alive
by a heartbeat, removed on deregister, and registration that outlasts an outage."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from support.polling import eventually
from support.tcp_proxy import TcpProxy
from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.adapters.registry import RedisServiceRegistry, service_key
from test_coordinator.ports.registry import ServiceRecord

pytestmark = pytest.mark.redis

SERVICE = "test-coordinator"


def record(instance: str, host: str = "it-host") -> ServiceRecord:
    return ServiceRecord(
        service=SERVICE,
        instance=instance,
        host=host,
        http_port=8080,
        grpc_port=50051,
        version="0.1.0",
        environment="testing",
        status="healthy",
        timestamp="2024-06-01T12:00:00.000Z",
    )


def unique_instance() -> str:
    return f"{SERVICE}-It{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def registries(redis_url: str) -> AsyncIterator[list[RedisServiceRegistry]]:
    """Registries made by a test; each is closed (deregistered, client closed) afterwards."""
    made: list[RedisServiceRegistry] = []
    yield made
    for registry in made:
        await registry.close()


def new_registry(
    made: list[RedisServiceRegistry], url: str, **options: float
) -> RedisServiceRegistry:
    registry = RedisServiceRegistry(redis_client(url), owns_client=True, **options)  # type: ignore[arg-type]
    made.append(registry)
    return registry


async def test_both_instances_are_found_by_lookup(
    redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    """The singleton and test-coordinator-Chaos1 publish under services:test-coordinator:*."""
    singleton = new_registry(registries, redis_url)
    chaos = new_registry(registries, redis_url)
    await singleton.register(record(SERVICE))
    await chaos.register(record(f"{SERVICE}-Chaos1"))

    found = {r.instance for r in await singleton.lookup(SERVICE)}

    assert {SERVICE, f"{SERVICE}-Chaos1"} <= found


async def test_record_has_a_ttl_and_deregister_removes_it(
    redis: Redis, redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    instance = unique_instance()
    registry = new_registry(registries, redis_url)
    await registry.register(record(instance))
    key = service_key(SERVICE, instance)

    published = json.loads(await redis.get(key) or "{}")
    ttl = await redis.ttl(key)
    await registry.deregister()

    assert (instance, "it-host") == (published["instance"], published["host"])
    assert 0 < ttl <= 30
    assert not await redis.exists(key)
    assert instance not in {r.instance for r in await registry.lookup(SERVICE)}


async def test_heartbeat_renews_the_ttl_and_the_timestamp(
    redis: Redis, redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    instance = unique_instance()
    registry = new_registry(registries, redis_url, heartbeat_s=0.05)
    await registry.register(record(instance))
    key = service_key(SERVICE, instance)
    first = json.loads(await redis.get(key) or "{}")["timestamp"]
    await redis.expire(key, 5)

    async def renewed() -> bool:
        value = json.loads(await redis.get(key) or "{}")
        return await redis.ttl(key) > 5 and value.get("timestamp") != first

    await eventually(renewed, timeout_s=5, what="heartbeat renewed the record")


async def test_deregister_leaves_another_process_record_alone(
    redis: Redis, redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    """If another process took over the key, deregistering must not delete its record."""
    instance = unique_instance()
    registry = new_registry(registries, redis_url)
    await registry.register(record(instance))
    key = service_key(SERVICE, instance)
    theirs = json.dumps({"instance": instance, "host": "someone-else"})
    await redis.set(key, theirs, ex=30)

    await registry.deregister()

    try:
        assert theirs == await redis.get(key)
    finally:
        await redis.delete(key)


async def test_lookup_skips_malformed_records(
    redis: Redis, redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    service = f"it-{uuid.uuid4().hex[:10]}"
    registry = new_registry(registries, redis_url)
    await redis.set(f"services:{service}:broken", "not json", ex=30)
    try:
        assert await registry.lookup(service) == []
    finally:
        await redis.delete(f"services:{service}:broken")


@pytest.mark.slow
async def test_registration_made_while_redis_is_down_appears_when_it_returns(
    redis: Redis, redis_url: str, registries: list[RedisServiceRegistry]
) -> None:
    instance = unique_instance()
    async with TcpProxy.for_url(redis_url, 6379) as proxy:
        registry = new_registry(registries, proxy.rewrite(redis_url), retry_s=0.05)
        await proxy.cut()

        await registry.register(record(instance))
        assert not registry.is_published

        await proxy.restore()
        await eventually(lambda: registry.is_published, timeout_s=10, what="published")
        assert await redis.exists(service_key(SERVICE, instance))
        await registry.deregister()
        assert not await redis.exists(service_key(SERVICE, instance))

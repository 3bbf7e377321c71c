"""Discovery against a real Redis: an instance registered as RedisServiceRegistry does it
(``services:{service}:{instance}``, with a TTL) is found, and its address is in the model."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.adapters.registry import RedisServiceRegistry, service_key
from test_coordinator.adapters.registry.discovery import RedisInstanceLookup, discover_for
from test_coordinator.config import Settings
from test_coordinator.ports.registry import ServiceRecord
from test_coordinator.scenario.discovery import DiscoveryFailed
from test_coordinator.scenario.loader import load_scenario

pytestmark = pytest.mark.redis

SERVICE = "exchange-simulator"


def scenario(instance: str) -> str:
    return f"""\
version: 1
name: discovered-exchange
services:
  exchange:
    discover: {{service: {SERVICE}, instance: {instance}}}
steps:
  - name: the exchange answers
    probe:
      http: {{url: "${{exchange.http_url}}/api/v1/orders", status: 404}}
"""


def record(instance: str) -> ServiceRecord:
    return ServiceRecord(
        service=SERVICE,
        instance=instance,
        host="127.0.0.1",
        http_port=18081,
        grpc_port=50061,
        version="1.0.0",
        environment="testing",
        status="healthy",
        timestamp="2025-10-07T12:34:56.000Z",
    )


def unique_instance() -> str:
    return f"exchange-It{uuid.uuid4().hex[:10]}"


def where(redis_url: str) -> str:
    """How messages name the Redis at ``redis_url``: host, port and database, no password."""
    parts = urlsplit(redis_url)
    return f"redis://{parts.hostname}:{parts.port or 6379}/{parts.path.strip('/') or 0}"


def settings(tmp_path: Path, redis_url: str | None) -> Settings:
    return Settings(data_dir=tmp_path, postgres_url=None, redis_url=redis_url)


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[RedisServiceRegistry]:
    """The ecosystem's registration, as every service of it does (closed: deregistered)."""
    registry = RedisServiceRegistry(redis_client(redis_url), owns_client=True)
    yield registry
    await registry.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_registered_instance_is_resolved_into_the_model(
    tmp_path: Path, redis_url: str, registry: RedisServiceRegistry
) -> None:
    instance = unique_instance()
    await registry.register(record(instance))
    path = tmp_path / "discovered.yaml"
    path.write_text(scenario(instance))

    discovered = await discover_for(path, settings(tmp_path, redis_url))
    loaded = load_scenario(path, discovered=discovered)

    assert discovered["exchange"].instance == instance
    health = loaded.model.services["exchange"].health.http
    assert health is not None
    assert health.url == "http://127.0.0.1:18081/api/v1/health"
    assert health.json_fields == {"status": "healthy"}
    (step,) = loaded.model.steps
    assert step.probe.http.url == "http://127.0.0.1:18081/api/v1/orders"  # type: ignore[attr-defined]
    assert loaded.values["exchange.grpc_port"] == 50061


async def test_the_lookup_reads_the_record_and_sees_it_go(
    redis_url: str, registry: RedisServiceRegistry
) -> None:
    instance = unique_instance()
    lookup = RedisInstanceLookup.from_url(redis_url)
    try:
        await registry.register(record(instance))
        found = await lookup.lookup(SERVICE, instance)
        await registry.deregister()
        gone = await lookup.lookup(SERVICE, instance)
    finally:
        await lookup.close()

    assert found is not None
    assert (found.host, found.http_port, found.grpc_port) == ("127.0.0.1", 18081, 50061)
    assert gone is None
    assert lookup.location == where(redis_url)


async def test_a_missing_instance_is_a_problem_at_its_line_and_column(
    tmp_path: Path, redis_url: str
) -> None:
    instance = unique_instance()
    path = tmp_path / "missing.yaml"
    path.write_text(scenario(instance))

    with pytest.raises(DiscoveryFailed) as caught:
        await discover_for(path, settings(tmp_path, redis_url))

    (problem,) = caught.value.problems
    assert not caught.value.unavailable
    assert str(problem).startswith(
        f"{path}:5:55: services.exchange.discover.instance: no instance {instance} in the "
        f"registry at {where(redis_url)} (key services:{SERVICE}:{instance})"
    )


async def test_a_malformed_record_is_a_problem(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    instance = unique_instance()
    key = service_key(SERVICE, instance)
    await redis.set(key, '{"service": "exchange-simulator"}', ex=30)
    try:
        with pytest.raises(DiscoveryFailed) as caught:
            await discover_for(scenario(instance), settings(tmp_path, redis_url), label="request")
    finally:
        await redis.delete(key)

    assert str(caught.value).startswith("request:5:55: ")
    assert "is not a discovery record: instance is missing" in str(caught.value)


async def test_a_shared_client_is_used_and_left_open(
    tmp_path: Path, redis: Redis, registry: RedisServiceRegistry
) -> None:
    instance = unique_instance()
    await registry.register(record(instance))

    found = await discover_for(scenario(instance), settings(tmp_path, None), redis=redis)

    assert found["exchange"].http_port == 18081
    assert await redis.ping()


async def test_a_redis_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens once it is closed

    with pytest.raises(DiscoveryFailed) as caught:
        await discover_for(
            scenario(unique_instance()), settings(tmp_path, f"redis://127.0.0.1:{closed}/15")
        )

    assert caught.value.unavailable
    assert f"the registry at redis://127.0.0.1:{closed}/15" in str(caught.value)
    assert "does not answer" in str(caught.value)

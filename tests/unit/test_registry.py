"""Service registry: the record's key and JSON, the in-process registry, the factory."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.adapters.registry import (
    InProcessServiceRegistry,
    RedisServiceRegistry,
    record_from_settings,
    registry_from_settings,
    service_key,
)
from test_coordinator.adapters.registry.records import (
    MalformedRecord,
    record_from_json,
    record_to_json,
)
from test_coordinator.config import Settings
from test_coordinator.ports.availability import RegistryUnavailable
from test_coordinator.ports.registry import ServiceRecord


def settings(tmp_path: Path, **values: object) -> Settings:
    fields: dict[str, object] = {"data_dir": tmp_path, "postgres_url": None, "redis_url": None}
    fields.update(values)
    return Settings(**fields)  # type: ignore[arg-type]


def record(instance: str = "test-coordinator-Chaos1", **changes: object) -> ServiceRecord:
    fields: dict[str, object] = {
        "service": "test-coordinator",
        "instance": instance,
        "host": "coordinator-chaos1",
        "http_port": 8080,
        "grpc_port": 50051,
        "version": "0.1.0",
        "environment": "docker",
        "status": "healthy",
        "timestamp": "2024-06-01T12:00:00.000Z",
    }
    fields.update(changes)
    return ServiceRecord(**fields)  # type: ignore[arg-type]


def test_key_is_the_ecosystem_contract() -> None:
    assert (
        service_key("test-coordinator", "test-coordinator-Chaos1")
        == "services:test-coordinator:test-coordinator-Chaos1"
    )


def test_json_has_exactly_the_contract_fields() -> None:
    published = json.loads(record_to_json(record()))

    assert {
        "service",
        "instance",
        "host",
        "http_port",
        "grpc_port",
        "version",
        "environment",
        "status",
        "timestamp",
    } == set(published)
    assert record() == record_from_json(record_to_json(record()))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        json.dumps({**json.loads(record_to_json(record())), "http_port": "8080"}),
        json.dumps({k: v for k, v in json.loads(record_to_json(record())).items() if k != "host"}),
    ],
)
def test_malformed_records_are_refused(text: str) -> None:
    with pytest.raises(MalformedRecord):
        record_from_json(text)


def test_record_from_settings(tmp_path: Path) -> None:
    mine = record_from_settings(
        settings(tmp_path, service_instance_name="test-coordinator-Chaos1", http_port=9000),
        status="starting",
    )

    assert (mine.service, mine.instance) == ("test-coordinator", "test-coordinator-Chaos1")
    assert (mine.http_port, mine.status, mine.host) == (9000, "starting", "127.0.0.1")
    assert mine.timestamp.endswith("Z")


def test_a_wildcard_bind_address_is_advertised_as_the_host_name(tmp_path: Path) -> None:
    mine = record_from_settings(settings(tmp_path, http_host="0.0.0.0"))

    assert socket.gethostname() == mine.host


async def test_in_process_registries_sharing_a_directory_see_each_other() -> None:
    directory: dict[str, ServiceRecord] = {}
    singleton, chaos = InProcessServiceRegistry(directory), InProcessServiceRegistry(directory)
    await singleton.register(record("test-coordinator"))
    await chaos.register(record())

    found = await singleton.lookup("test-coordinator")
    await chaos.deregister()
    await chaos.deregister()

    assert [r.instance for r in found] == ["test-coordinator", "test-coordinator-Chaos1"]
    assert [record("test-coordinator")] == await chaos.lookup("test-coordinator")
    assert await chaos.lookup("exchange") == []


async def test_factory_without_redis_is_in_process(tmp_path: Path) -> None:
    assert isinstance(registry_from_settings(settings(tmp_path)), InProcessServiceRegistry)


async def test_factory_uses_a_given_client_or_url(tmp_path: Path) -> None:
    """Building never connects, so an unreachable URL is fine here."""
    client = Redis.from_url("redis://127.0.0.1:1/0")
    with_url = registry_from_settings(settings(tmp_path, redis_url="redis://127.0.0.1:1/0"))
    try:
        assert isinstance(registry_from_settings(settings(tmp_path), client), RedisServiceRegistry)
        assert isinstance(with_url, RedisServiceRegistry)
    finally:
        await with_url.close()
        await client.aclose()


async def test_redis_down_at_register_does_not_fail_startup() -> None:
    """Nothing listens on the port: register returns, lookups say the registry is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = RedisServiceRegistry(
        redis_client(f"redis://127.0.0.1:{port}/0"), owns_client=True, retry_s=0.01
    )
    try:
        await registry.register(record())

        assert not registry.is_published
        with pytest.raises(RegistryUnavailable):
            await registry.lookup("test-coordinator")
    finally:
        await registry.close()

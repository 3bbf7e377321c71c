"""Leases on shared targets, in this process and in a real Redis: all keys or none, never
another holder's, expiring when the holder stops renewing."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from support.polling import eventually
from test_coordinator.adapters.leases import LocalLeases
from test_coordinator.adapters.leases.redis_leases import RedisLeases
from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.ports.leases import Leases, LeaseUnavailable

LeasesFactory = Callable[[], Leases]


@pytest.fixture(params=["local", "redis"])
async def make_leases(request: pytest.FixtureRequest) -> AsyncIterator[LeasesFactory]:
    if request.param == "local":
        shared = LocalLeases()
        yield lambda: shared
        return
    redis = redis_client(request.getfixturevalue("redis_url"))
    prefix = f"test-leases-{secrets.token_hex(4)}:"
    yield lambda: RedisLeases(redis, prefix=prefix, ttl_ms=5_000)
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_keys_are_taken_whole_or_not_at_all(make_leases: LeasesFactory) -> None:
    one, other = make_leases(), make_leases()  # two coordinators on one store of leases

    assert await one.try_acquire({"container:a", "listen:127.0.0.1:9000"}, "A/run-1")
    assert not await other.try_acquire({"container:b", "container:a"}, "B/run-2")
    assert {} == await other.holders({"container:b"})  # nothing half-taken
    assert await other.try_acquire({"container:b"}, "B/run-2")
    assert {"container:a": "A/run-1", "container:b": "B/run-2"} == await one.holders(
        {"container:a", "container:b", "container:c"}
    )


async def test_only_the_holder_releases_or_renews(make_leases: LeasesFactory) -> None:
    one, other = make_leases(), make_leases()
    assert await one.try_acquire({"container:a"}, "A/run-1")

    await other.release({"container:a"}, "B/run-2")
    assert ["container:a"] == await other.renew({"container:a"}, "B/run-2")
    assert [] == await one.renew({"container:a"}, "A/run-1")
    assert {"container:a": "A/run-1"} == await other.holders({"container:a"})

    await one.release({"container:a"}, "A/run-1")
    assert await other.try_acquire({"container:a"}, "B/run-2")


async def test_a_redis_lease_not_renewed_expires(redis_url: str) -> None:
    redis = redis_client(redis_url)
    prefix = f"test-leases-{secrets.token_hex(4)}:"
    dead = RedisLeases(redis, prefix=prefix, ttl_ms=50)
    alive = RedisLeases(redis, prefix=prefix, ttl_ms=5_000)
    try:
        assert await dead.try_acquire({"container:a"}, "killed/run-1")
        assert 0 < await redis.pttl(prefix + "container:a") <= 50
        assert not await alive.try_acquire({"container:a"}, "B/run-2")
        await eventually(
            lambda: alive.try_acquire({"container:a"}, "B/run-2"),
            timeout_s=5.0,
            interval_s=0.01,
            what="the lease expired",
        )
        assert {"container:a": "B/run-2"} == await alive.holders({"container:a"})
    finally:
        await redis.delete(prefix + "container:a")
        await redis.aclose()


async def test_an_unreachable_redis_says_so() -> None:
    redis = redis_client("redis://127.0.0.1:1/0", timeout_s=0.5)
    try:
        with pytest.raises(LeaseUnavailable, match="leases"):
            await RedisLeases(redis).try_acquire({"container:a"}, "A/run-1")
    finally:
        await redis.aclose()

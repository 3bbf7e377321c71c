"""Service registry adapters: Redis (the ecosystem's discovery contract) or in-process."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_client
from test_coordinator.adapters.registry.in_process import InProcessServiceRegistry
from test_coordinator.adapters.registry.records import record_from_settings, service_key
from test_coordinator.adapters.registry.redis_registry import RedisServiceRegistry
from test_coordinator.config import Settings


def registry_from_settings(
    settings: Settings,
    redis: Redis | str | None = None,
    *,
    status: Callable[[], str] | None = None,
) -> RedisServiceRegistry | InProcessServiceRegistry:
    """Redis registry on ``redis`` (a client, shared, or a URL, owned), else on REDIS_URL,
    else an in-process one. ``status`` gives the status each heartbeat publishes.
    Never touches the network; call ``close()`` at shutdown."""
    if isinstance(redis, Redis):
        return RedisServiceRegistry(redis, status=status)
    url = redis or settings.redis_url
    if url:
        return RedisServiceRegistry(redis_client(url), owns_client=True, status=status)
    return InProcessServiceRegistry()


__all__ = [
    "InProcessServiceRegistry",
    "RedisServiceRegistry",
    "record_from_settings",
    "registry_from_settings",
    "service_key",
]

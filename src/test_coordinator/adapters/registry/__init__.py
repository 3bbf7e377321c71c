"""Service registry adapters: Redis (the ecosystem's discovery contract) or in-process.

redis-py loads only when a Redis registry is made: a service without REDIS_URL
never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from test_coordinator.adapters.registry.in_process import InProcessServiceRegistry
from test_coordinator.adapters.registry.records import record_from_settings, service_key
from test_coordinator.config import Settings
from test_coordinator.ports.registry import ServiceRegistry

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from test_coordinator.adapters.registry.redis_registry import RedisServiceRegistry


def registry_from_settings(
    settings: Settings,
    redis: Redis | str | None = None,
    *,
    status: Callable[[], str] | None = None,
) -> ServiceRegistry:
    """Redis registry on ``redis`` (a client, shared, or a URL, owned), else on REDIS_URL,
    else an in-process one. ``status`` gives the status each heartbeat publishes.
    Never touches the network; call ``close()`` at shutdown."""
    url = redis if isinstance(redis, str) else settings.redis_url
    if redis is None and not url:
        return InProcessServiceRegistry()
    from test_coordinator.adapters.redis_client import redis_client
    from test_coordinator.adapters.registry.redis_registry import RedisServiceRegistry

    if redis is not None and not isinstance(redis, str):
        return RedisServiceRegistry(redis, status=status)
    assert url is not None
    return RedisServiceRegistry(redis_client(url), owns_client=True, status=status)


def __getattr__(name: str) -> Any:
    if name == "RedisServiceRegistry":
        from test_coordinator.adapters.registry.redis_registry import RedisServiceRegistry

        return RedisServiceRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "InProcessServiceRegistry",
    "RedisServiceRegistry",
    "record_from_settings",
    "registry_from_settings",
    "service_key",
]

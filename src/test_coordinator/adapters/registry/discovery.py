"""Discovery for scenarios: one instance's record read from Redis, and :func:`discover_for`,
what a run calls before it loads a scenario with ``discover:`` services.

    discovered = await discover_for(path_or_text, settings)   # {} without discover:
    loaded = load_scenario(path, ..., discovered=discovered)

Raises :class:`~test_coordinator.scenario.discovery.DiscoveryFailed` (a
ScenarioInvalid, each problem at its ``discover:``) when an instance is not in the
registry, when no registry is configured (REDIS_URL unset), or, with
``unavailable`` set, when Redis does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_client, redis_errors
from test_coordinator.adapters.registry.records import record_from_json, service_key
from test_coordinator.config import Settings
from test_coordinator.ports.availability import RegistryUnavailable
from test_coordinator.ports.registry import ServiceRecord
from test_coordinator.scenario.discovery import (
    DiscoveredValues,
    DiscoverSpec,
    InstanceLookup,
    no_registry,
    resolve_discovered,
    specs_in_text,
)
from test_coordinator.scenario.source import MAX_FILE_BYTES

DEFAULT_LABEL = "request"


class RedisInstanceLookup:
    """InstanceLookup on Redis: GET ``services:{service}:{instance}`` (the key other
    services' RedisServiceRegistry heartbeats keep alive), parsed as a record."""

    def __init__(self, client: Redis, *, timeout_s: float = 2.0, owns_client: bool = False) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 2.0) -> RedisInstanceLookup:
        """A lookup on its own client (closed by :meth:`close`); never touches the network."""
        return cls(redis_client(url, timeout_s=timeout_s), timeout_s=timeout_s, owns_client=True)

    @property
    def location(self) -> str:
        return redis_location(self._client)

    async def lookup(self, service: str, instance: str) -> ServiceRecord | None:
        key = service_key(service, instance)
        try:
            async with asyncio.timeout(self._timeout_s):
                with redis_errors("redis", RegistryUnavailable):
                    value = await self._client.get(key)
        except TimeoutError:
            raise RegistryUnavailable(f"redis: no answer within {self._timeout_s:g} s") from None
        if value is None:
            return None
        # MalformedRecord (a ValueError) for a value that is not a record: the port's contract.
        return record_from_json(value.decode() if isinstance(value, bytes) else str(value))

    async def close(self) -> None:
        """Close the client if this lookup owns it; idempotent."""
        if self._owns_client:
            self._owns_client = False
            with contextlib.suppress(OSError):
                await self._client.aclose()


def redis_location(client: Redis) -> str:
    """``redis://host:port/db`` (or ``unix://path``) of ``client``: no password, ever."""
    kwargs = client.connection_pool.connection_kwargs
    db = kwargs.get("db", 0)
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={db}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


async def discover_for(
    scenario: Path | str,
    settings: Settings,
    *,
    label: str = DEFAULT_LABEL,
    redis: Redis | InstanceLookup | None = None,
) -> DiscoveredValues:
    """The registry's records for the ``discover:`` services of ``scenario``.

    ``scenario``: a file (Path) or a document's text (str, its problems under
    ``label``). Empty, without touching Redis, when it discovers nothing.
    ``redis``: a client to share (or any InstanceLookup); else one on REDIS_URL
    (``settings.redis_url``), closed before returning. Raises DiscoveryFailed.
    """
    specs = _specs(scenario, label)
    if not specs:
        return {}
    if redis is not None and not isinstance(redis, Redis):
        return await resolve_discovered(specs, redis)
    if redis is not None:
        return await resolve_discovered(specs, RedisInstanceLookup(redis))
    if not settings.redis_url:
        raise no_registry(specs)
    lookup = RedisInstanceLookup.from_url(settings.redis_url)
    try:
        return await resolve_discovered(specs, lookup)
    finally:
        await lookup.close()


def _specs(scenario: Path | str, label: str) -> list[DiscoverSpec]:
    if isinstance(scenario, str):
        return specs_in_text(scenario, label)
    try:
        with scenario.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # loading it reports why it cannot be read
    return specs_in_text(text, str(scenario))


__all__ = ["RedisInstanceLookup", "discover_for", "redis_location"]

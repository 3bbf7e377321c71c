"""Service discovery in Redis: ``services:{service}:{instance}`` with a TTL and a heartbeat.

The record is published at register() and re-published (fresh timestamp, TTL
renewed) by a heartbeat task until deregister(). A Redis that is down at
register() does not fail startup: the heartbeat keeps trying, more often than
its usual pace, until a publish succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable

from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_errors
from test_coordinator.adapters.registry.records import (
    MalformedRecord,
    record_from_json,
    record_to_json,
    service_key,
    service_pattern,
    utc_now_iso,
)
from test_coordinator.infrastructure.logging import get_logger
from test_coordinator.ports.availability import RegistryUnavailable
from test_coordinator.ports.registry import ServiceRecord

log = get_logger(__name__)

# Delete the key only if it still holds what this registry wrote last.
_DELETE_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisServiceRegistry:
    """ServiceRegistry on Redis; call :meth:`close` at shutdown (it deregisters too)."""

    def __init__(
        self,
        client: Redis,
        *,
        ttl_s: int = 30,
        heartbeat_s: float = 10.0,
        retry_s: float = 1.0,
        timeout_s: float = 2.0,
        owns_client: bool = False,
        status: Callable[[], str] | None = None,
    ) -> None:
        """``status`` (optional) gives the current status for each heartbeat."""
        self._client = client
        self._ttl_s = ttl_s
        self._heartbeat_s = heartbeat_s
        self._retry_s = retry_s
        self._timeout_s = timeout_s
        self._owns_client = owns_client
        self._status = status
        self._record: ServiceRecord | None = None
        self._published = False
        self._last_written: str | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def is_published(self) -> bool:
        """Whether the last publish reached Redis."""
        return self._published

    async def register(self, record: ServiceRecord) -> None:
        await self._stop_heartbeat()
        self._record = record
        await self._publish()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="registry-heartbeat")

    async def deregister(self) -> None:
        await self._stop_heartbeat()
        record, written = self._record, self._last_written
        self._record, self._last_written, self._published = None, None, False
        if record is not None and written is not None:
            key = service_key(record.service, record.instance)
            try:
                async with asyncio.timeout(self._timeout_s):
                    with redis_errors("redis", RegistryUnavailable):
                        await self._client.eval(_DELETE_IF_OURS, 1, key, written)
            except (RegistryUnavailable, TimeoutError) as exc:
                log.warning("registry.deregister_failed", key=key, problem=str(exc))

    async def close(self) -> None:
        """Deregister, then close the client if this registry owns it; idempotent."""
        await self.deregister()
        if self._owns_client:
            self._owns_client = False
            with contextlib.suppress(OSError):
                await self._client.aclose()

    async def lookup(self, service: str) -> list[ServiceRecord]:
        try:
            async with asyncio.timeout(self._timeout_s):
                with redis_errors("redis", RegistryUnavailable):
                    keys = [
                        k
                        async for k in self._client.scan_iter(
                            match=service_pattern(service), count=100
                        )
                    ]
                    values = await self._client.mget(keys) if keys else []
        except TimeoutError:
            raise RegistryUnavailable(f"redis: no answer within {self._timeout_s:g} s") from None
        records = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue  # expired between SCAN and MGET
            try:
                records.append(record_from_json(_text(value)))
            except MalformedRecord as exc:
                log.warning("registry.malformed_record", key=key, problem=str(exc))
        return sorted(records, key=lambda record: record.instance)

    async def _heartbeat_loop(self) -> None:
        retry = self._retry_s
        while True:
            if self.is_published:
                retry = self._retry_s
                await asyncio.sleep(self._heartbeat_s)
            else:
                await asyncio.sleep(retry)
                retry = min(retry * 2, self._heartbeat_s)
            await self._publish()

    async def _publish(self) -> None:
        if self._record is None:
            return
        status = self._status() if self._status is not None else self._record.status
        record = dataclasses.replace(self._record, status=status, timestamp=utc_now_iso())
        key, value = service_key(record.service, record.instance), record_to_json(record)
        try:
            async with asyncio.timeout(self._timeout_s):
                with redis_errors("redis", RegistryUnavailable):
                    await self._client.set(key, value, ex=self._ttl_s)
        except (RegistryUnavailable, TimeoutError) as exc:
            if self.is_published:
                log.warning("registry.publish_failed", key=key, problem=str(exc))
            self._published = False
            return
        if not self.is_published:
            log.info("registry.published", key=key, ttl_s=self._ttl_s)
        self._published, self._last_written = True, value

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

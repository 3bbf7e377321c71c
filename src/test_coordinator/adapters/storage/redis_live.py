"""Live run state in Redis, every key under the instance's namespace.

Keys, for namespace ``ns``:

* ``ns:runs:{run_id}``: a hash with run_id, scenario, status, updated_at_ms;
  it expires ``finished_ttl_s`` after the run stops being active;
* ``ns:runs:active``: the set of run ids whose latest status is ``running``.

Used directly it is the ``Remote`` behind a BufferedWriter; reads go through
:class:`~test_coordinator.adapters.storage.buffered_live.BufferedLiveState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_errors
from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.writes import PendingWrite, WriteKind
from test_coordinator.ports.availability import StorageRejected, StorageUnavailable
from test_coordinator.ports.live_state import LiveRun

DAY_S = 24 * 3600


class RedisLiveState:
    def __init__(
        self, client: Redis, namespace: str, *, name: str = "redis", finished_ttl_s: int = DAY_S
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self._finished_ttl_s = finished_ttl_s

    def run_key(self, run_id: str) -> str:
        return f"{self.namespace}:runs:{run_id}"

    @property
    def active_key(self) -> str:
        return f"{self.namespace}:runs:active"

    async def ping(self) -> None:
        with redis_errors(self.name, StorageUnavailable):
            await self.client.ping()

    async def apply(self, pending: Sequence[PendingWrite]) -> None:
        """Apply ``pending`` in order, atomically (MULTI/EXEC)."""
        runs = [self._live_run(write) for write in pending]
        with redis_errors(self.name, StorageUnavailable):
            async with self.client.pipeline(transaction=True) as pipe:
                for run in runs:
                    key = self.run_key(run.run_id)
                    fields: Mapping[Any, Any] = {
                        k: str(v) for k, v in writes.live_run_to_row(run).items()
                    }
                    pipe.hset(key, mapping=fields)
                    if run.is_active:
                        pipe.sadd(self.active_key, run.run_id)
                        pipe.persist(key)
                    else:
                        pipe.srem(self.active_key, run.run_id)
                        pipe.expire(key, self._finished_ttl_s)
                await pipe.execute()

    def _live_run(self, write: PendingWrite) -> LiveRun:
        if write.kind is not WriteKind.PUBLISH_LIVE_RUN:
            raise StorageRejected(f"{self.name}: live state cannot apply {write.kind.value!r}")
        return writes.live_run_from_row(write.payload)

    async def publish(self, run: LiveRun) -> None:
        await self.apply([writes.publish_live_run(run)])

    async def get(self, run_id: str) -> LiveRun | None:
        with redis_errors(self.name, StorageUnavailable):
            row = await self.client.hgetall(self.run_key(run_id))
        return writes.live_run_from_row(_texts(row)) if row else None

    async def active(self) -> list[LiveRun]:
        with redis_errors(self.name, StorageUnavailable):
            run_ids = sorted(await self.client.smembers(self.active_key))
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.hgetall(self.run_key(_text(run_id)))
                rows = await pipe.execute() if run_ids else []
        runs = [writes.live_run_from_row(_texts(row)) for row in rows if row]
        return [run for run in runs if run.is_active]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _texts(row: Mapping[str | bytes, str | bytes]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in row.items()}

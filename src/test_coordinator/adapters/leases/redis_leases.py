"""Leases in Redis, shared by every coordinator of one ecosystem.

Each key is ``{prefix}{key}`` holding the holder's id, set with NX and a time to
live; acquiring several keys and giving them back are Lua scripts, so a set of
keys is taken whole or not at all, and a holder never deletes or extends a lease
that has passed to someone else. The prefix is the ecosystem's, not an
instance's namespace: test-coordinator and test-coordinator-Chaos1 must see each
other's leases.
"""

from __future__ import annotations

from collections.abc import Collection

from redis.asyncio import Redis

from test_coordinator.adapters.redis_client import redis_errors
from test_coordinator.ports.leases import LeaseUnavailable

LEASE_PREFIX = "test-coordinator:leases:"
DEFAULT_TTL_MS = 30_000

_ACQUIRE = """
for i, key in ipairs(KEYS) do
  local held = redis.call('GET', key)
  if held and held ~= ARGV[1] then return 0 end
end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
end
return 1
"""

_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

_RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 1
"""


class RedisLeases:
    """The Leases port in Redis; a lease lives ``ttl_ms`` unless renewed."""

    def __init__(
        self, redis: Redis, *, prefix: str = LEASE_PREFIX, ttl_ms: int = DEFAULT_TTL_MS
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.ttl_ms = ttl_ms

    def _keys(self, keys: Collection[str]) -> list[str]:
        return [self._prefix + key for key in sorted(keys)]

    async def try_acquire(self, keys: Collection[str], holder: str) -> bool:
        if not keys:
            return True
        with redis_errors("leases", LeaseUnavailable):
            taken = await self._redis.eval(
                _ACQUIRE, len(keys), *self._keys(keys), holder, str(self.ttl_ms)
            )
        return bool(taken)

    async def renew(self, keys: Collection[str], holder: str) -> list[str]:
        if not keys:
            return []
        ordered = sorted(keys)
        with redis_errors("leases", LeaseUnavailable):
            lost = await self._redis.eval(
                _RENEW, len(ordered), *self._keys(ordered), holder, str(self.ttl_ms)
            )
        return [ordered[int(index) - 1] for index in lost]

    async def release(self, keys: Collection[str], holder: str) -> None:
        if not keys:
            return
        with redis_errors("leases", LeaseUnavailable):
            await self._redis.eval(_RELEASE, len(keys), *self._keys(keys), holder)

    async def holders(self, keys: Collection[str]) -> dict[str, str]:
        ordered = sorted(keys)
        if not ordered:
            return {}
        with redis_errors("leases", LeaseUnavailable):
            values = await self._redis.mget(self._keys(ordered))
        return {key: str(value) for key, value in zip(ordered, values, strict=True) if value}

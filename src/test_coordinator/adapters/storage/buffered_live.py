"""LiveState for Redis that keeps accepting updates while the server is down."""

from __future__ import annotations

from test_coordinator.adapters.storage import writes
from test_coordinator.adapters.storage.buffered import BufferedWriter
from test_coordinator.adapters.storage.redis_live import RedisLiveState
from test_coordinator.ports.live_state import LiveRun


class BufferedLiveState:
    """Publishes go through ``writer`` (outbox when down); reads raise StorageUnavailable
    when down."""

    def __init__(self, state: RedisLiveState, writer: BufferedWriter) -> None:
        self._state = state
        self._writer = writer

    async def publish(self, run: LiveRun) -> None:
        await self._writer.write(writes.publish_live_run(run))

    async def get(self, run_id: str) -> LiveRun | None:
        return await self._writer.read(lambda: self._state.get(run_id))

    async def active(self) -> list[LiveRun]:
        return await self._writer.read(self._state.active)

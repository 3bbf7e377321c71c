"""A registry inside one process, for running without Redis and for tests."""

from __future__ import annotations

from test_coordinator.adapters.registry.records import service_key
from test_coordinator.ports.registry import ServiceRecord


class InProcessServiceRegistry:
    """Registries sharing one ``directory`` see each other's records."""

    def __init__(self, directory: dict[str, ServiceRecord] | None = None) -> None:
        self.directory = directory if directory is not None else {}
        self._key: str | None = None

    async def register(self, record: ServiceRecord) -> None:
        await self.deregister()
        self._key = service_key(record.service, record.instance)
        self.directory[self._key] = record

    async def deregister(self) -> None:
        if self._key is not None:
            self.directory.pop(self._key, None)
            self._key = None

    async def close(self) -> None:
        await self.deregister()

    async def lookup(self, service: str) -> list[ServiceRecord]:
        found = (r for r in self.directory.values() if r.service == service)
        return sorted(found, key=lambda record: record.instance)

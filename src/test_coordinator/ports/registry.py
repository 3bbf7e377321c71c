"""The ecosystem's service-discovery contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """What a live instance publishes at ``services:{service}:{instance}``."""

    service: str
    instance: str
    host: str
    http_port: int
    grpc_port: int
    version: str
    environment: str
    status: str
    timestamp: str


class ServiceRegistry(Protocol):
    async def register(self, record: ServiceRecord) -> None:
        """Publish the record and keep it alive (heartbeat) until deregister()."""

    async def deregister(self) -> None:
        """Stop the heartbeat and remove the record; idempotent."""

    async def lookup(self, service: str) -> list[ServiceRecord]:
        """The live instances of ``service``."""

    async def close(self) -> None:
        """Deregister and let go of connections; idempotent."""

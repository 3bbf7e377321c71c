"""One run's targets: every service sent to the backend of its kind.

The engine holds a :class:`RunTargets` and never a backend itself, so a run may
mix kinds (an exchange in a container, an engine as a local process).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from test_coordinator.targets.port import TargetBackend, TargetError, TargetState


class RunTargets:
    def __init__(self, backends: Mapping[str, TargetBackend]) -> None:
        """``backends``: the backend of each service by name (several names, one backend)."""
        self._by_service = dict(backends)

    def backend(self, name: str) -> TargetBackend:
        try:
            return self._by_service[name]
        except KeyError:
            raise TargetError(f"{name}: not a service the coordinator runs") from None

    def kind(self, name: str) -> str:
        return self.backend(name).kind

    def names(self) -> list[str]:
        return list(self._by_service)

    async def start(self, name: str) -> str:
        return await self.backend(name).start(name)

    async def stop(
        self, name: str, grace_s: float | None = None, signum: int | None = None
    ) -> None:
        await self.backend(name).stop(name, grace_s, signum)

    async def restart(self, name: str) -> str:
        return await self.backend(name).restart(name)

    async def signal(self, name: str, signum: int) -> None:
        await self.backend(name).signal(name, signum)

    async def pause(self, name: str) -> None:
        await self.backend(name).pause(name)

    async def resume(self, name: str) -> None:
        await self.backend(name).resume(name)

    def state(self, name: str) -> TargetState:
        backend = self._by_service.get(name)
        return backend.state(name) if backend is not None else TargetState.NOT_STARTED

    async def exit_problem(self, name: str) -> str | None:
        return await self.backend(name).exit_problem(name)

    def identity(self, name: str) -> str | None:
        backend = self._by_service.get(name)
        return backend.identity(name) if backend is not None else None

    def handle(self, name: str) -> dict[str, Any]:
        return self.backend(name).handle(name)

    def adopt(self, name: str, handle: Mapping[str, Any]) -> None:
        self.backend(name).adopt(name, handle)

    def log_paths(self, name: str) -> list[Path]:
        return self.backend(name).log_paths(name)

    async def sync_logs(self, name: str) -> None:
        await self.backend(name).sync_logs(name)

    def owns(self, name: str) -> bool:
        return self.backend(name).owns(name)

    async def remove(self, name: str) -> str:
        return await self.backend(name).remove(name)

    async def close(self) -> None:
        """Close every backend, even when one fails; raise naming every failure."""
        failures = []
        seen: list[TargetBackend] = []
        for backend in self._by_service.values():
            if any(backend is other for other in seen):
                continue
            seen.append(backend)
            try:
                await backend.close()
            except Exception as exc:
                failures.append(str(exc) or type(exc).__name__)
        if failures:
            raise TargetError("; ".join(failures))

"""Live run state: what is running right now, shared with the rest of the ecosystem.

Unlike :class:`~test_coordinator.ports.storage.RunStore`, this holds only the
latest status of each run, cheap to read from anywhere (dashboards, other
coordinators). Publishing never raises for an unreachable server: the state is
kept locally and replayed in order; reads raise ``StorageUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from test_coordinator.ports.storage import RunStatus


@dataclass(frozen=True, slots=True)
class LiveRun:
    """The latest known state of one run."""

    run_id: str
    scenario: str
    status: RunStatus
    updated_at_ms: int

    @property
    def is_active(self) -> bool:
        return self.status is RunStatus.RUNNING


class LiveState(Protocol):
    async def publish(self, run: LiveRun) -> None:
        """Record ``run`` as the latest state; active runs join the active set."""

    async def get(self, run_id: str) -> LiveRun | None: ...

    async def active(self) -> list[LiveRun]:
        """The runs whose latest state is ``running``."""

"""What the coordinator stores: runs, their journal, and undo records.

Undo records are written before a fault is injected, so that a coordinator
that dies mid-run can be recovered by the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class RunStatus(StrEnum):
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    ABORTED = "aborted"


class UndoStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    scenario: str
    status: RunStatus
    started_at_ms: int
    ended_at_ms: int | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JournalEvent:
    run_id: str
    seq: int
    at_ms: int
    kind: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UndoRecord:
    undo_id: str
    run_id: str
    target: str
    action: Mapping[str, Any]
    status: UndoStatus = UndoStatus.PENDING
    created_at_ms: int = 0
    detail: str = ""


class RunStore(Protocol):
    """Durable storage for runs. Writes never raise for an unreachable server:
    they are kept locally and replayed in order when it answers again."""

    async def save_run(self, run: RunRecord) -> None: ...

    async def append_events(self, events: Sequence[JournalEvent]) -> None: ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(self, limit: int = 50) -> list[RunRecord]: ...

    async def events(self, run_id: str) -> list[JournalEvent]: ...

    async def record_undo(self, undo: UndoRecord) -> None: ...

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None: ...

    async def pending_undos(self) -> list[UndoRecord]: ...

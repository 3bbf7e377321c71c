"""What the coordinator stores: runs, their journal, and undo records.

Undo records are written before a fault is injected, so that a coordinator
that dies mid-run can be recovered by the next one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class RunStatus(StrEnum):
    QUEUED = "queued"
    """Submitted, not started: nothing was injected yet."""
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    """Cancelled by a user; its undo ran."""


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


_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_CURSOR_SHOWN = 64
_MS_RANGE = range(-(2**63), 2**63)
"""What a BIGINT column (and SQLite's INTEGER) holds."""


def _is_ms(value: object) -> bool:
    return type(value) is int and value in _MS_RANGE


@dataclass(frozen=True, slots=True)
class RunCursor:
    """Where a page of runs ended: its last run's ``(started_at_ms, run_id)``.

    Clients see it as an opaque url-safe token (:meth:`encode`) and hand it back,
    decoded, as :attr:`RunQuery.before` to get the next (older) page.
    """

    started_at_ms: int
    run_id: str

    @classmethod
    def of(cls, run: RunRecord) -> RunCursor:
        return cls(run.started_at_ms, run.run_id)

    def encode(self) -> str:
        data = json.dumps({"s": self.started_at_ms, "r": self.run_id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> RunCursor:
        """The cursor :meth:`encode` made; ValueError naming ``text`` for anything else."""
        try:
            if not _CURSOR_TEXT.fullmatch(text):
                raise ValueError("not url-safe base64")
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or set(data) != {"s", "r"}:
                raise ValueError("not a run cursor")
            started_at_ms, run_id = data["s"], data["r"]
            if not _is_ms(started_at_ms) or not isinstance(run_id, str):
                raise ValueError("not a run cursor")
            if "\x00" in run_id or not run_id.isprintable():
                raise ValueError("not a run id")
            run_id.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
        except (ValueError, binascii.Error):
            shown = text[:_CURSOR_SHOWN] + "..." if len(text) > _CURSOR_SHOWN else text
            raise ValueError(
                f"invalid run cursor {shown!r}: not the next-page cursor of a run listing"
            ) from None
        return cls(started_at_ms, run_id)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs to list, newest first by ``(started_at_ms, run_id)`` descending.

    Every filter given must hold: ``scenario`` equal; ``status`` one of ``statuses``
    (empty: any); ``started_from_ms <= started_at_ms < started_to_ms`` (either bound
    may be left out); strictly after the cursor ``before`` in that order (keyset
    paging: runs saved meanwhile never shift a page). At most ``limit`` runs.
    """

    scenario: str | None = None
    statuses: frozenset[RunStatus] = frozenset()
    started_from_ms: int | None = None
    started_to_ms: int | None = None
    limit: int = 50
    before: RunCursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit < 2**63 - 1:
            raise ValueError(
                f"a run query's limit must be a positive 64-bit integer, not {self.limit}"
            )
        for name in ("started_from_ms", "started_to_ms"):
            value = getattr(self, name)
            if value is not None and not _is_ms(value):
                raise ValueError(f"a run query's {name} must be a 64-bit integer, not {value!r}")
        # a plain "passed" becomes RunStatus.PASSED; an unknown status is a ValueError
        object.__setattr__(self, "statuses", frozenset(RunStatus(s) for s in self.statuses))

    def matches(self, run: RunRecord) -> bool:
        """Whether ``run`` passes every filter (the limit aside)."""
        if self.scenario is not None and run.scenario != self.scenario:
            return False
        if self.statuses and run.status not in self.statuses:
            return False
        if self.started_from_ms is not None and run.started_at_ms < self.started_from_ms:
            return False
        if self.started_to_ms is not None and run.started_at_ms >= self.started_to_ms:
            return False
        before = self.before
        if before is None:
            return True
        return (run.started_at_ms, run.run_id) < (before.started_at_ms, before.run_id)

    def page(self, ordered: Sequence[RunRecord]) -> RunPage:
        """The page made of the matching runs, in order, fetched up to ``limit + 1``
        (the extra one only tells that there is a next page)."""
        if len(ordered) <= self.limit:
            return RunPage(tuple(ordered), None)
        runs = tuple(ordered[: self.limit])
        return RunPage(runs, RunCursor.of(runs[-1]))

    def select(self, runs: Iterable[RunRecord]) -> RunPage:
        """The page, filtered and ordered in memory (for stores that hold runs in memory)."""
        chosen = sorted(
            (run for run in runs if self.matches(run)),
            key=lambda run: (run.started_at_ms, run.run_id),
            reverse=True,
        )
        return self.page(chosen[: self.limit + 1])


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs; ``next`` goes in ``RunQuery.before`` for the following page
    (None: this is the last one)."""

    runs: tuple[RunRecord, ...]
    next: RunCursor | None = None


class RunStore(Protocol):
    """Durable storage for runs. Writes never raise for an unreachable server:
    they are kept locally and replayed in order when it answers again."""

    async def save_run(self, run: RunRecord) -> None: ...

    async def append_events(self, events: Sequence[JournalEvent]) -> None: ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The newest ``limit`` runs (the first page of ``RunQuery(limit=limit)``)."""
        ...

    async def query_runs(self, query: RunQuery) -> RunPage:
        """A page of the runs ``query`` selects, newest first; ``RunPage.next`` is the
        ``before`` of the next page."""
        ...

    async def events(self, run_id: str) -> list[JournalEvent]: ...

    async def record_undo(self, undo: UndoRecord) -> None: ...

    async def finish_undo(self, undo_id: str, status: UndoStatus, detail: str = "") -> None: ...

    async def pending_undos(self, *, include_failed: bool = False) -> list[UndoRecord]:
        """The undo records still to do, oldest first; with ``include_failed``, also those
        tried and not seen done (``recover`` tries them again)."""

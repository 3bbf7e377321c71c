"""The undo ledger: every fault's undo, recorded durably before the fault is injected.

A fault step calls :meth:`UndoLedger.register` (which awaits the RunStore's
``record_undo`` and flushes the journal, so nothing that led up to the fault
can be lost) and only then injects the fault. When a later step reverts the
fault itself (a ``resume`` after a ``pause``, a ``start`` after a ``stop``), it
:meth:`settle`\\s the entry. Whatever is left is undone by :meth:`unwind`,
newest first, in the run's ``finally``; what a killed coordinator leaves is
undone by :mod:`test_coordinator.engine.recovery` through the same
:func:`unwind_actions`. The actions themselves are in
:mod:`test_coordinator.engine.undo_actions`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from test_coordinator.engine.errors import InfrastructureError
from test_coordinator.engine.journal import Journal
from test_coordinator.engine.results import UndoResult
from test_coordinator.engine.undo_actions import UndoAction, UndoKind, superseded
from test_coordinator.ports.storage import RunStore, UndoRecord, UndoStatus


@dataclass(slots=True)
class UndoEntry:
    record: UndoRecord
    undo: UndoAction
    settled: bool = False

    @property
    def service(self) -> str:
        return self.record.target

    @property
    def action(self) -> str:
        return self.undo.kind.value


Performer = Callable[[UndoAction], Awaitable[str]]
"""Undoes one action and returns what it did (verified); raises to report a failure."""

Finisher = Callable[[UndoEntry, UndoStatus, str], Awaitable[None]]


async def unwind_actions(
    entries: Sequence[UndoEntry],
    perform: Performer,
    finish: Finisher,
    on_start: Callable[[UndoEntry], None] = lambda entry: None,
) -> list[UndoResult]:
    """Undo ``entries`` newest first; one failure does not stop the others.

    The one undo path: a run's own cleanup and every recovery after a crash use it.
    """
    results = []
    pending = list(entries)
    for entry in reversed(list(entries)):
        pending.remove(entry)
        on_start(entry)
        reason = superseded(entry.undo, [other.undo for other in pending])
        if reason is not None:
            status, detail = UndoStatus.DONE, reason
        else:
            try:
                detail = await perform(entry.undo)
            except Exception as exc:
                status, detail = UndoStatus.FAILED, str(exc) or type(exc).__name__
            else:
                status = UndoStatus.DONE
        await finish(entry, status, detail)
        results.append(
            UndoResult(entry.record.undo_id, entry.service, entry.action, status.value, detail)
        )
    return results


class UndoLedger:
    def __init__(
        self,
        store: RunStore,
        run_id: str,
        journal: Journal,
        wall_clock_ms: Callable[[], int],
        on_done: Callable[[UndoEntry], None] | None = None,
    ) -> None:
        """``on_done`` hears of every entry settled or undone successfully: its fault ended."""
        self._store = store
        self._on_done = on_done
        self._run_id = run_id
        self._journal = journal
        self._wall_clock_ms = wall_clock_ms
        self._entries: list[UndoEntry] = []
        self._issued = 0

    @property
    def pending(self) -> list[UndoEntry]:
        return [entry for entry in self._entries if not entry.settled]

    def has_pending(self, service: str, kind: UndoKind) -> bool:
        return any(e.service == service and e.undo.kind is kind for e in self.pending)

    async def register(self, undo: UndoAction) -> UndoEntry:
        """Record the undo and the journal so far durably; returns only once the store has them."""
        self._issued += 1  # before any await: concurrent faults get distinct ids
        record = UndoRecord(
            undo_id=f"{self._run_id}-u{self._issued}",
            run_id=self._run_id,
            target=undo.service,
            action=undo.to_json(),
            status=UndoStatus.PENDING,
            created_at_ms=self._wall_clock_ms(),
        )
        try:
            await self._store.record_undo(record)
        except Exception as exc:
            raise InfrastructureError(
                f"cannot record the undo of {undo.service}, so the fault was not injected: {exc}"
            ) from exc
        entry = UndoEntry(record, undo)
        self._entries.append(entry)
        self._journal.record(
            "undo.registered",
            undo_id=record.undo_id,
            service=undo.service,
            action=undo.kind.value,
        )
        await self._journal.flush(self._store)
        return entry

    async def settle(self, service: str, kind: UndoKind, detail: str) -> None:
        """The scenario itself reverted ``service``'s faults of this kind: nothing left to undo."""
        for entry in self.pending:
            if entry.service == service and entry.undo.kind is kind:
                await self._finish(entry, UndoStatus.DONE, detail)

    async def settle_entry(self, entry: UndoEntry, detail: str) -> None:
        if not entry.settled:
            await self._finish(entry, UndoStatus.DONE, detail)

    async def unwind(self, perform: Performer) -> list[UndoResult]:
        """Undo every pending entry, newest first, through :func:`unwind_actions`."""

        def started(entry: UndoEntry) -> None:
            self._journal.record(
                "undo.started",
                undo_id=entry.record.undo_id,
                service=entry.service,
                action=entry.action,
            )

        return await unwind_actions(self.pending, perform, self._finish, started)

    async def _finish(self, entry: UndoEntry, status: UndoStatus, detail: str) -> None:
        entry.settled = True
        if status is UndoStatus.DONE and self._on_done is not None:
            self._on_done(entry)
        self._journal.record(
            "undo.finished",
            undo_id=entry.record.undo_id,
            service=entry.service,
            action=entry.action,
            status=status.value,
            detail=detail,
        )
        await self._store.finish_undo(entry.record.undo_id, status, detail)

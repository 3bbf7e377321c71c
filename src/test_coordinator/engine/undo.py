"""The undo ledger: every fault's undo, recorded durably before the fault is injected.

A fault step calls :meth:`UndoLedger.register` (which awaits the RunStore's
``record_undo``) and only then injects the fault. When a later step reverts
the fault itself (a ``resume`` after a ``pause``, a ``start`` after a ``stop``),
it :meth:`settle`\\s the entry. Whatever is left is undone by :meth:`unwind`,
newest first, in the run's ``finally``. What a killed coordinator leaves is
undone by :mod:`test_coordinator.engine.leftovers`, which reads the same records.

Actions (the record's ``action`` mapping):

* ``{"action": "resume", "service", "pid", "start_ticks"}``: SIGCONT the group;
* ``{"action": "start", "service", "command", "env", "cwd", "stop_grace_s", "log_dir"}``:
  start the service again (``env`` is the scenario's, not the coordinator's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from test_coordinator.engine.errors import InfrastructureError
from test_coordinator.engine.journal import Journal
from test_coordinator.engine.results import UndoResult
from test_coordinator.ports.storage import RunStore, UndoRecord, UndoStatus

RESUME = "resume"
START = "start"


@dataclass(slots=True)
class UndoEntry:
    record: UndoRecord
    settled: bool = False

    @property
    def service(self) -> str:
        return self.record.target

    @property
    def action(self) -> str:
        return str(self.record.action["action"])


Performer = Callable[[UndoEntry], Awaitable[str]]
"""Undoes one entry and returns what it did; raises to report a failure."""


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

    @property
    def pending(self) -> list[UndoEntry]:
        return [entry for entry in self._entries if not entry.settled]

    async def register(self, service: str, action: Mapping[str, Any]) -> UndoEntry:
        """Record the undo durably; returns only once the store has it."""
        record = UndoRecord(
            undo_id=f"{self._run_id}-u{len(self._entries) + 1}",
            run_id=self._run_id,
            target=service,
            action=dict(action),
            status=UndoStatus.PENDING,
            created_at_ms=self._wall_clock_ms(),
        )
        try:
            await self._store.record_undo(record)
        except Exception as exc:
            raise InfrastructureError(
                f"cannot record the undo of {service}, so the fault was not injected: {exc}"
            ) from exc
        entry = UndoEntry(record)
        self._entries.append(entry)
        self._journal.record(
            "undo.registered", undo_id=record.undo_id, service=service, action=action["action"]
        )
        return entry

    async def settle(self, service: str, action: str, detail: str) -> None:
        """The scenario itself reverted ``service``'s faults of this kind: nothing left to undo."""
        for entry in self.pending:
            if entry.service == service and entry.action == action:
                await self._finish(entry, UndoStatus.DONE, detail)

    async def settle_entry(self, entry: UndoEntry, detail: str) -> None:
        if not entry.settled:
            await self._finish(entry, UndoStatus.DONE, detail)

    async def unwind(self, perform: Performer) -> list[UndoResult]:
        """Undo every pending entry, newest first; one failure does not stop the others."""
        results = []
        for entry in reversed(self.pending):
            self._journal.record(
                "undo.started",
                undo_id=entry.record.undo_id,
                service=entry.service,
                action=entry.action,
            )
            try:
                detail = await perform(entry)
            except Exception as exc:
                status, detail = UndoStatus.FAILED, str(exc) or type(exc).__name__
            else:
                status = UndoStatus.DONE
            await self._finish(entry, status, detail)
            results.append(
                UndoResult(entry.record.undo_id, entry.service, entry.action, status.value, detail)
            )
        return results

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

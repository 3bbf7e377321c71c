"""Undo what a killed coordinator left behind, and mark its runs aborted.

A coordinator killed with SIGKILL cannot run its ``finally``. Its undo records
are still ``pending`` in the store and its run is still ``running``. The run's
guard (see :mod:`test_coordinator.guard`) notices at once and calls
:func:`recover_runs` for that run; ``test-coordinator recover`` and the start
of ``run`` and ``serve`` call it for every run whose coordinator and guard are
both gone (on this host: ``/proc/PID/stat`` missing, a zombie, or another
process with that pid).

For each such run, the targets are built again from the specs its undo records
hold, each record's incarnation is adopted, and the records are undone newest
first through :func:`~test_coordinator.engine.undo.unwind_actions`, the same
path and the same verification as the run's own cleanup. Runs of a coordinator
(or guard) that is still alive, or that ran on another host, are left alone.

A ``queued`` run never injected anything: when the coordinator that queued it
(``summary["coordinator"]``) is gone, it is marked aborted, with nothing to undo.
A queued run that names no coordinator is left alone: nothing tells whether the
service that queued it still runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from test_coordinator.engine.identity import coordinator_alive, coordinator_identity
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import UndoResult
from test_coordinator.engine.undo import UndoEntry, unwind_actions
from test_coordinator.engine.undo_actions import UndoAction, perform
from test_coordinator.engine.undo_verify import health_verifier
from test_coordinator.ports.storage import (
    JournalEvent,
    RunQuery,
    RunRecord,
    RunStatus,
    RunStore,
    UndoRecord,
    UndoStatus,
)
from test_coordinator.runtime.run_claim import claim_run
from test_coordinator.targets.port import RunScope, TargetSpec

log = logging.getLogger(__name__)

LIST_LIMIT = 10_000
RECOVERED_EVENT = "run.recovered"
UNDO_RECOVERED_EVENT = "undo.recovered"
UNFINISHED = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
"""The statuses of a run whose coordinator, once dead, leaves it to recovery."""


@dataclass(frozen=True, slots=True)
class LeftoverUndo:
    run_id: str
    undo_id: str
    service: str
    action: str
    status: UndoStatus
    detail: str


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    undos: tuple[LeftoverUndo, ...] = ()
    aborted_runs: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    updated_runs: tuple[str, ...] = ()
    """Runs aborted before, whose undos that had failed this recovery tried again: their
    reports are written again."""

    @property
    def empty(self) -> bool:
        return not (self.undos or self.aborted_runs or self.skipped)

    @property
    def all_undone(self) -> bool:
        return all(u.status is UndoStatus.DONE for u in self.undos)


async def recover_runs(
    store: RunStore,
    deps: EngineDeps,
    *,
    only: Collection[str] | None = None,
    retry_failed: bool = False,
    wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> RecoveryReport:
    """Undo the pending records of every run left behind (or only of the runs in ``only``);
    with ``retry_failed``, also the undos tried before and not seen done (``recover``: a
    proxy that did not answer then, a container that would not start), never those of a
    run whose coordinator or guard still lives."""
    pending = await store.pending_undos(include_failed=retry_failed)
    unfinished = await store.query_runs(RunQuery(statuses=UNFINISHED, limit=LIST_LIMIT))
    runs = {run.run_id: run for run in unfinished.runs}
    for run_id in {u.run_id for u in pending} | set(only or ()):
        if run_id not in runs:
            found = await store.get_run(run_id)
            if found is not None:
                runs[found.run_id] = found
    involved = {u.run_id for u in pending} | {
        r.run_id
        for r in runs.values()
        if r.status is RunStatus.RUNNING
        or (r.status is RunStatus.QUEUED and r.summary.get("coordinator"))
    }
    if only is not None:
        involved &= set(only)
    orphaned: set[str] = set()
    skipped: list[str] = []
    for run_id in sorted(involved):
        why_not = _still_owned(runs.get(run_id))
        if why_not is None:
            orphaned.add(run_id)
        else:
            skipped.append(f"run {run_id}: {why_not}")

    undone: list[LeftoverUndo] = []
    aborted: list[str] = []
    updated: list[str] = []
    for run_id in sorted(orphaned):
        with claim_run(run_id) as claimed:
            if not claimed:
                skipped.append(f"run {run_id}: another process is recovering it")
                continue
            # Looked at again under the claim: another recoverer may have finished it.
            records = sorted(
                (
                    u
                    for u in await store.pending_undos(include_failed=retry_failed)
                    if u.run_id == run_id
                ),
                key=lambda u: (u.created_at_ms, u.undo_id),
            )
            known = runs.get(run_id)
            journal = _UndoJournal(
                store,
                run_id,
                await store.events(run_id),
                started_ms=known.started_at_ms if known is not None else None,
                wall_clock_ms=wall_clock_ms,
            )
            results = await _undo_run(deps, run_id, records, journal)
            done = [
                LeftoverUndo(run_id, r.undo_id, r.service, r.action, UndoStatus(r.status), r.detail)
                for r in results
            ]
            undone += done
            run = await store.get_run(run_id)
            if run is None:
                continue
            if run.status not in UNFINISHED:
                if done:
                    updated.append(run_id)
                continue
            await _mark_aborted(store, run, done, wall_clock_ms())
            aborted.append(run_id)
    return RecoveryReport(tuple(undone), tuple(aborted), tuple(skipped), tuple(updated))


def _still_owned(run: RunRecord | None) -> str | None:
    """Why a run must be left alone (its coordinator or guard lives), or None."""
    if run is None:
        return None
    coordinator = run.summary.get("coordinator")
    alive = coordinator_alive(coordinator)
    if alive:
        return f"its coordinator (pid {coordinator['pid']}) still runs"  # type: ignore[index]
    guard = run.summary.get("guard")
    if coordinator_alive(guard) and (guard or {}).get("pid") != os.getpid():
        return f"its guard (pid {guard['pid']}) is undoing it"  # type: ignore[index]
    if alive is None and coordinator and run.status in UNFINISHED:
        return f"its coordinator ran on host {coordinator.get('host')}"
    return None


async def _undo_run(
    deps: EngineDeps, run_id: str, records: list[UndoRecord], journal: _UndoJournal
) -> list[UndoResult]:
    entries: list[UndoEntry] = []
    unreadable: list[UndoResult] = []
    for record in records:
        try:
            entries.append(UndoEntry(record, UndoAction.from_json(record.action)))
        except ValueError as exc:
            kind = str(record.action.get("action"))
            unreadable.append(
                await journal.finished(record, kind, UndoStatus.FAILED, f"{record.target}: {exc}")
            )
    if not entries:
        return unreadable

    specs: dict[str, TargetSpec] = {}
    for entry in entries:  # oldest first: the newest record's spec wins
        specs[entry.service] = entry.undo.target
    log_dir = next((e.undo.log_dir for e in reversed(entries) if e.undo.log_dir), ".")
    try:
        targets = deps.targets_factory(specs, RunScope(run_id, Path(log_dir)))
    except Exception as exc:
        detail = f"cannot reach the targets: {exc}"
        return unreadable + [
            await journal.finished(entry.record, entry.action, UndoStatus.FAILED, detail)
            for entry in entries
        ]
    for entry in entries:
        if entry.undo.handle:
            targets.adopt(entry.service, entry.undo.handle)
    verify = health_verifier(deps.probes, deps.poll_interval_s)

    async def perform_one(action: UndoAction) -> str:
        return await perform(action, targets, verify)

    async def finish(entry: UndoEntry, status: UndoStatus, detail: str) -> None:
        await journal.finished(entry.record, entry.action, status, detail)

    try:
        results = await unwind_actions(entries, perform_one, finish)
    finally:
        try:
            await targets.close()
        except Exception as exc:
            log.warning("run %s: closing its targets after recovery: %s", run_id, exc)
    return unreadable + results


class _UndoJournal:
    """Each undo a recovery finishes, stored at once with its own journal event
    (``undo.recovered``): a recoverer killed half-way leaves in the run's journal what it
    had done, and a later one that finishes an undo that failed before replaces it."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        events: list[JournalEvent],
        *,
        started_ms: int | None,
        wall_clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._seq = max((event.seq for event in events), default=0)
        self._started_ms = started_ms
        self._now_ms = wall_clock_ms

    async def finished(
        self, record: UndoRecord, action: str, status: UndoStatus, detail: str
    ) -> UndoResult:
        await self._store.finish_undo(record.undo_id, status, detail)
        self._seq += 1
        result = UndoResult(record.undo_id, record.target, action, status.value, detail)
        await self._store.append_events(
            [
                JournalEvent(
                    run_id=self._run_id,
                    seq=self._seq,
                    at_ms=max(self._now_ms() - (self._started_ms or self._now_ms()), 0),
                    kind=UNDO_RECOVERED_EVENT,
                    data=dict(_result_json(result)),
                )
            ]
        )
        return result


async def _mark_aborted(
    store: RunStore, run: RunRecord, undone: list[LeftoverUndo], now_ms: int
) -> None:
    guard = run.summary.get("guard") or {}
    who = "its guard" if guard.get("pid") == os.getpid() else "a later recovery"
    if run.status is RunStatus.QUEUED:
        reason = (
            "the coordinator died before the queued run started; nothing to undo; "
            f"marked by {who} (pid {os.getpid()})"
        )
    else:
        reason = f"the coordinator died before the run ended; undone by {who} (pid {os.getpid()})"
    failed = [u for u in undone if u.status is not UndoStatus.DONE]
    await store.save_run(
        replace(
            run,
            status=RunStatus.ABORTED,
            ended_at_ms=now_ms,
            summary={
                **run.summary,
                "outcome": "aborted",
                "reason": reason,
                "exit_code": 3,
                "recovered_by": coordinator_identity(),
                "recovered_undos": [f"{u.action} {u.service}: {u.detail}" for u in undone],
                "undo_failed": bool(failed),
            },
        )
    )
    events = await store.events(run.run_id)
    seq = max((event.seq for event in events), default=0) + 1
    at_ms = max(now_ms - run.started_at_ms, 0)
    await store.append_events(
        [
            JournalEvent(
                run_id=run.run_id,
                seq=seq,
                at_ms=at_ms,
                kind=RECOVERED_EVENT,
                data={
                    "status": RunStatus.ABORTED.value,
                    "reason": reason,
                    "undos": [_undo_json(u) for u in undone],
                },
            )
        ]
    )


def _result_json(result: UndoResult) -> Mapping[str, Any]:
    return {
        "undo_id": result.undo_id,
        "service": result.service,
        "action": result.action,
        "status": result.status,
        "detail": result.detail,
    }


def _undo_json(undo: LeftoverUndo) -> Mapping[str, Any]:
    return _result_json(
        UndoResult(undo.undo_id, undo.service, undo.action, undo.status.value, undo.detail)
    )


__all__ = ["LeftoverUndo", "RecoveryReport", "recover_runs"]

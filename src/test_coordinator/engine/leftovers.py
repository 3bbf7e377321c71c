"""Undo what a killed coordinator left behind, and mark its runs aborted.

A coordinator killed with SIGKILL cannot run its ``finally``. Its undo records
are still ``pending`` in the store, and its run is still ``running``. This
module, used by ``test-coordinator recover`` and at the start of ``run`` and
``serve``, finds the runs whose coordinator process is gone (on this host:
``/proc/PID/stat`` missing, a zombie, or another process with that pid), undoes
their pending records newest first, and marks those runs ``aborted``:

* ``resume``: the paused process group gets SIGCONT, after checking that the pid
  is still the same process (its start time) and that it is stopped (state T);
  a process that is gone is reported.
* ``start``: the service is started again, detached (its own session, output
  appended to its log files), and left running; if it cannot be started it is
  reported.

Runs of a coordinator that is still alive, or that ran on another host, are
left alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from test_coordinator.engine.identity import coordinator_alive, coordinator_identity
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    RunStore,
    UndoRecord,
    UndoStatus,
)
from test_coordinator.runtime import procfs

RESUME_CONFIRM_S = 2.0
LIST_LIMIT = 10_000

Spawner = Callable[[Sequence[str], Mapping[str, str], str | None, Path, Path], int]


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

    @property
    def empty(self) -> bool:
        return not (self.undos or self.aborted_runs or self.skipped)

    @property
    def all_undone(self) -> bool:
        return all(u.status is UndoStatus.DONE for u in self.undos)


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | None, out: Path, err: Path
) -> int:
    """Start ``argv`` in a new session, output appended to ``out``/``err``; its pid.

    Uses posix_spawn (no Popen object to reap): the process outlives this one.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(out), flags, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(err), flags, 0o644),
    ]
    command = list(argv)
    if cwd is not None:
        if not Path(cwd).is_dir():
            raise OSError(f"working directory {cwd} does not exist")
        command = ["/bin/sh", "-c", 'cd -- "$0" && exec "$@"', cwd, *command]
    return os.posix_spawnp(
        command[0], command, {**os.environ, **env}, file_actions=actions, setsid=True
    )


async def recover_leftovers(
    store: RunStore,
    *,
    wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    spawn: Spawner = spawn_detached,
) -> RecoveryReport:
    pending = await store.pending_undos()
    runs = {run.run_id: run for run in await store.list_runs(limit=LIST_LIMIT)}
    for undo in pending:
        if undo.run_id not in runs:
            found = await store.get_run(undo.run_id)
            if found is not None:
                runs[found.run_id] = found
    orphaned: set[str] = set()
    skipped: list[str] = []
    involved = {u.run_id for u in pending} | {
        r.run_id for r in runs.values() if r.status is RunStatus.RUNNING
    }
    for run_id in sorted(involved):
        run = runs.get(run_id)
        identity = run.summary.get("coordinator") if run is not None else None
        alive = coordinator_alive(identity)
        if alive:
            skipped.append(f"run {run_id}: its coordinator (pid {identity['pid']}) still runs")  # type: ignore[index]
        elif alive is None and identity and run is not None and run.status is RunStatus.RUNNING:
            skipped.append(f"run {run_id}: its coordinator ran on host {identity.get('host')}")
        else:
            orphaned.add(run_id)

    undone = []
    for undo in sorted(pending, key=lambda u: (u.created_at_ms, u.undo_id), reverse=True):
        if undo.run_id not in orphaned:
            continue
        status, detail = await _undo(undo, spawn)
        await store.finish_undo(undo.undo_id, status, detail)
        undone.append(
            LeftoverUndo(
                undo.run_id,
                undo.undo_id,
                undo.target,
                str(undo.action.get("action")),
                status,
                detail,
            )
        )

    aborted = []
    for run_id in sorted(orphaned):
        run = runs.get(run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            continue
        await _mark_aborted(store, run, [u for u in undone if u.run_id == run_id], wall_clock_ms())
        aborted.append(run_id)
    return RecoveryReport(tuple(undone), tuple(aborted), tuple(skipped))


async def _undo(undo: UndoRecord, spawn: Spawner) -> tuple[UndoStatus, str]:
    action = undo.action
    kind = action.get("action")
    service = undo.target
    try:
        if kind == "resume":
            return await _resume(service, action)
        if kind == "start":
            return _start(service, action, spawn)
    except Exception as exc:
        return UndoStatus.FAILED, f"{service}: {exc}"
    return UndoStatus.FAILED, f"{service}: unknown undo action {kind!r}"


async def _resume(service: str, action: Mapping[str, Any]) -> tuple[UndoStatus, str]:
    pid = action.get("pid")
    if not isinstance(pid, int):
        return UndoStatus.FAILED, f"{service}: no pid was recorded; cannot resume it"
    stat = procfs.read_stat(pid)
    if stat is None or stat.is_zombie:
        return UndoStatus.FAILED, f"{service}: process {pid} is gone; nothing to resume"
    ticks = action.get("start_ticks")
    if ticks is not None and stat.start_ticks != ticks:
        return UndoStatus.FAILED, f"{service}: pid {pid} is now another process; not touched"
    if not stat.is_stopped:
        return UndoStatus.DONE, f"{service}: process {pid} was not paused (state {stat.state})"
    try:
        os.killpg(pid, signal.SIGCONT)
    except ProcessLookupError:
        return UndoStatus.FAILED, f"{service}: process group {pid} is gone; nothing to resume"
    deadline = time.monotonic() + RESUME_CONFIRM_S
    while True:
        members = procfs.group_members(pid)
        if not any(member.is_stopped for member in members):
            return UndoStatus.DONE, f"{service}: process {pid} resumed (SIGCONT)"
        if time.monotonic() >= deadline:
            return UndoStatus.FAILED, f"{service}: process {pid} still stopped after SIGCONT"
        await asyncio.sleep(0.01)  # bounded by RESUME_CONFIRM_S


def _start(service: str, action: Mapping[str, Any], spawn: Spawner) -> tuple[UndoStatus, str]:
    command = action.get("command")
    if not isinstance(command, list) or not command:
        return UndoStatus.FAILED, f"{service}: no command was recorded; start it by hand"
    log_dir = Path(str(action.get("log_dir") or "."))
    env = {str(k): str(v) for k, v in dict(action.get("env") or {}).items()}
    try:
        pid = spawn(
            [str(part) for part in command],
            env,
            action.get("cwd"),
            log_dir / f"{service}.out.log",
            log_dir / f"{service}.err.log",
        )
    except OSError as exc:
        return UndoStatus.FAILED, f"{service}: could not be started again: {exc}"
    return UndoStatus.DONE, f"{service}: started again as pid {pid} (left running)"


async def _mark_aborted(
    store: RunStore, run: RunRecord, undone: list[LeftoverUndo], now_ms: int
) -> None:
    reason = "the coordinator stopped before the run ended; recovered by pid " + str(os.getpid())
    await store.save_run(
        replace(
            run,
            status=RunStatus.ABORTED,
            ended_at_ms=now_ms,
            summary={
                **run.summary,
                "outcome": "aborted",
                "reason": reason,
                "recovered_by": coordinator_identity(),
                "recovered_undos": [f"{u.action} {u.service}: {u.detail}" for u in undone],
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
                kind="run.recovered",
                data={
                    "status": RunStatus.ABORTED.value,
                    "reason": reason,
                    "undos": [
                        {
                            "service": u.service,
                            "action": u.action,
                            "status": u.status.value,
                            "detail": u.detail,
                        }
                        for u in undone
                    ],
                },
            )
        ]
    )

"""recover: undo what a dead coordinator left, leave live ones alone, mark runs aborted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine_fakes import InMemoryRunStore

from test_coordinator.engine.identity import coordinator_identity
from test_coordinator.engine.leftovers import recover_leftovers
from test_coordinator.ports.storage import (
    JournalEvent,
    RunRecord,
    RunStatus,
    UndoRecord,
    UndoStatus,
)


def dead_identity() -> dict[str, object]:
    """The identity of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    identity = coordinator_identity()
    identity.update(pid=int(child.stdout), start_ticks=0)
    return identity


async def store_with_run(identity: Mapping[str, object], *undos: UndoRecord) -> InMemoryRunStore:
    store = InMemoryRunStore()
    await store.save_run(
        RunRecord("r1", "s", RunStatus.RUNNING, 1_000, summary={"coordinator": dict(identity)})
    )
    await store.append_events([JournalEvent("r1", 1, 0, "run.started")])
    for undo in undos:
        await store.record_undo(undo)
    return store


def start_undo(n: int, **action: object) -> UndoRecord:
    return UndoRecord(f"r1-u{n}", "r1", "api", {"action": "start", **action}, created_at_ms=n)


async def test_dead_coordinator_run_is_undone_and_aborted(tmp_path: Path) -> None:
    spawned: list[tuple[Sequence[str], Mapping[str, str], str | None]] = []

    def spawn(
        argv: Sequence[str], env: Mapping[str, str], cwd: str | None, out: Path, err: Path
    ) -> int:
        spawned.append((argv, env, cwd))
        return 4242

    store = await store_with_run(
        dead_identity(),
        start_undo(
            1, command=["srv", "--port", "1"], env={"A": "1"}, cwd="/tmp", log_dir=str(tmp_path)
        ),
        UndoRecord("r1-u2", "r1", "db", {"action": "resume", "pid": 2**22 + 7}, created_at_ms=2),
    )

    report = await recover_leftovers(store, wall_clock_ms=lambda: 5_000, spawn=spawn)

    assert [("db", UndoStatus.FAILED), ("api", UndoStatus.DONE)] == [
        (u.service, u.status) for u in report.undos
    ]
    assert "is gone; nothing to resume" in report.undos[0].detail
    assert "started again as pid 4242" in report.undos[1].detail
    assert [(["srv", "--port", "1"], {"A": "1"}, "/tmp")] == spawned
    assert ("r1",) == report.aborted_runs
    run = store.runs["r1"]
    assert RunStatus.ABORTED == run.status and 5_000 == run.ended_at_ms
    [_, recovered] = store.events_by_run["r1"]
    assert (2, "run.recovered", 4_000) == (recovered.seq, recovered.kind, recovered.at_ms)
    assert [] == await store.pending_undos()
    assert not report.all_undone


async def test_a_live_coordinator_is_left_alone() -> None:
    store = await store_with_run(coordinator_identity(), start_undo(1, command=["x"]))

    report = await recover_leftovers(store, spawn=lambda *a: 1)

    assert () == report.undos and () == report.aborted_runs
    assert [f"run r1: its coordinator (pid {os.getpid()}) still runs"] == list(report.skipped)
    assert RunStatus.RUNNING == store.runs["r1"].status


async def test_a_start_that_fails_is_reported(tmp_path: Path) -> None:
    def spawn(*args: object) -> int:
        raise OSError("no such file: srv")

    store = await store_with_run(
        dead_identity(), start_undo(1, command=["srv"], log_dir=str(tmp_path))
    )

    report = await recover_leftovers(store, spawn=spawn)

    [undo] = report.undos
    assert UndoStatus.FAILED == undo.status
    assert "api: could not be started again: no such file: srv" == undo.detail


async def test_nothing_to_do() -> None:
    report = await recover_leftovers(InMemoryRunStore())

    assert report.empty and report.all_undone

"""Recovery and queued runs: a queued run injected nothing, so when the coordinator that
queued it is gone it is marked aborted with nothing to undo; otherwise it is left alone."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from engine_fakes import harness

from test_coordinator.engine.identity import coordinator_identity
from test_coordinator.engine.recovery import RECOVERED_EVENT, recover_runs
from test_coordinator.ports.storage import RunRecord, RunStatus

NOW_MS = 10_000


def dead_coordinator() -> dict[str, object]:
    """This host, a pid that exists, another start time: the coordinator that had the
    pid is gone (the pid was reused)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start_ticks": -1}


def queued(run_id: str, **summary: object) -> RunRecord:
    return RunRecord(run_id, "kill-exchange", RunStatus.QUEUED, 1_000, summary=summary)


async def test_a_queued_run_of_a_dead_coordinator_is_aborted_with_nothing_undone() -> None:
    h = harness()
    await h.store.save_run(queued("q1", coordinator=dead_coordinator(), seed=7))

    report = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)

    assert report.aborted_runs == ("q1",) and report.undos == () and report.skipped == ()
    assert report.all_undone
    assert h.backends == []  # no target was built, so nothing was acted on
    stored = h.store.runs["q1"]
    assert stored.status is RunStatus.ABORTED
    assert stored.ended_at_ms == NOW_MS
    assert stored.summary["seed"] == 7
    assert "before the queued run started; nothing to undo" in stored.summary["reason"]
    assert stored.summary["recovered_undos"] == [] and stored.summary["undo_failed"] is False
    [event] = h.store.events_by_run["q1"]
    assert (event.kind, event.seq, event.at_ms) == (RECOVERED_EVENT, 1, NOW_MS - 1_000)
    assert event.data["status"] == "aborted" and event.data["undos"] == []


async def test_a_queued_run_of_a_live_coordinator_is_left_alone() -> None:
    h = harness()
    await h.store.save_run(queued("q1", coordinator=coordinator_identity()))

    report = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)

    assert report.aborted_runs == ()
    assert report.skipped == (f"run q1: its coordinator (pid {os.getpid()}) still runs",)
    assert h.store.runs["q1"].status is RunStatus.QUEUED


async def test_a_queued_run_queued_on_another_host_is_left_alone() -> None:
    h = harness()
    elsewhere = {"host": "another-host.invalid", "pid": 1, "start_ticks": 1}
    await h.store.save_run(queued("q1", coordinator=elsewhere))

    report = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)

    assert report.skipped == ("run q1: its coordinator ran on host another-host.invalid",)
    assert h.store.runs["q1"].status is RunStatus.QUEUED


async def test_a_queued_run_that_names_no_coordinator_is_not_touched() -> None:
    """Nothing tells whether the service that queued it still runs: recovery must not
    empty a live service's queue."""
    h = harness()
    await h.store.save_run(queued("q1", source="library"))

    everything = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)
    named = await recover_runs(h.store, h.deps, only={"q1"}, wall_clock_ms=lambda: NOW_MS)

    assert everything.empty and named.empty
    assert h.store.runs["q1"].status is RunStatus.QUEUED


async def test_only_limits_recovery_to_the_named_queued_run() -> None:
    h = harness()
    await h.store.save_run(queued("q1", coordinator=dead_coordinator()))
    await h.store.save_run(queued("q2", coordinator=dead_coordinator()))

    report = await recover_runs(h.store, h.deps, only={"q2"}, wall_clock_ms=lambda: NOW_MS)

    assert report.aborted_runs == ("q2",)
    assert h.store.runs["q1"].status is RunStatus.QUEUED


async def test_finished_runs_are_not_recovered_again() -> None:
    h = harness()
    for status in (RunStatus.CANCELLED, RunStatus.ABORTED, RunStatus.PASSED):
        record = RunRecord(
            f"r-{status.value}",
            "s",
            status,
            1,
            2,
            summary={"coordinator": dead_coordinator()},
        )
        await h.store.save_run(record)

    report = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)

    assert report.empty
    assert {r.status for r in h.store.runs.values()} == {
        RunStatus.CANCELLED,
        RunStatus.ABORTED,
        RunStatus.PASSED,
    }


async def test_an_undo_that_failed_is_tried_again_only_when_recover_is_asked_to() -> None:
    """The guard gave up on a proxy that did not answer: the start of a run or of serve
    leaves it alone (it must not act on old runs' services unasked), ``recover`` tries it."""
    from test_coordinator.engine.undo_actions import UndoAction, UndoKind
    from test_coordinator.ports.storage import UndoRecord, UndoStatus
    from test_coordinator.targets.port import TargetSpec

    h = harness()
    run = RunRecord(
        "r1", "pause-api", RunStatus.ABORTED, 1_000, 2_000, summary={"coordinator": None}
    )
    await h.store.save_run(run)
    action = UndoAction(
        kind=UndoKind.RESUME,
        service="api",
        target=TargetSpec("api", "process", {"command": "api"}),
        handle={"pid": 4242},
    )
    failed = UndoRecord("r1-u1", "r1", "api", action.to_json(), UndoStatus.FAILED, 1_500, "no")
    await h.store.record_undo(failed)

    untouched = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)
    assert untouched.empty and h.store.undos["r1-u1"].status is UndoStatus.FAILED

    retried = await recover_runs(h.store, h.deps, retry_failed=True, wall_clock_ms=lambda: NOW_MS)

    assert [("r1", "resume", UndoStatus.DONE)] == [
        (u.run_id, u.action, u.status) for u in retried.undos
    ]
    assert h.store.undos["r1-u1"].status is UndoStatus.DONE
    assert retried.aborted_runs == ()  # it had ended already: its status stays
    assert h.store.runs["r1"].status is RunStatus.ABORTED


async def test_a_run_another_process_is_recovering_is_left_to_it() -> None:
    """Two recoverers at once (the guard, recover, a starting run): one undoes the run and
    writes its reports; the other says so and touches nothing."""
    from test_coordinator.runtime.run_claim import claim_run

    h = harness()
    await h.store.save_run(queued("q1", coordinator=dead_coordinator()))

    with claim_run("q1") as claimed:
        assert claimed
        report = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)

    assert report.skipped == ("run q1: another process is recovering it",)
    assert report.aborted_runs == ()
    assert h.store.runs["q1"].status is RunStatus.QUEUED
    again = await recover_runs(h.store, h.deps, wall_clock_ms=lambda: NOW_MS)
    assert again.aborted_runs == ("q1",)


async def test_an_undo_that_failed_and_is_done_later_is_shown_done_in_the_rewritten_report(
    tmp_path: Path,
) -> None:
    """recover tries again an undo that failed for an aborted run: once it is done, the
    run's reports are written again, and they show it done (the latest word on each undo),
    with what an earlier recoverer, killed half-way, had done kept too."""
    from test_coordinator.engine.undo_actions import UndoAction, UndoKind
    from test_coordinator.ports.storage import JournalEvent, UndoRecord, UndoStatus
    from test_coordinator.reporting.aborted import aborted_result
    from test_coordinator.targets.port import TargetSpec

    h = harness()
    run = RunRecord(
        "r1",
        "heal-it",
        RunStatus.ABORTED,
        1_000,
        summary={"coordinator": dead_coordinator(), "run_dir": str(tmp_path)},
    )
    await h.store.save_run(run)
    remove = UndoAction(UndoKind.REMOVE, "api", TargetSpec("api", "process", {"command": "x"}))
    failed = UndoRecord("r1-u1", "r1", "api", remove.to_json(), UndoStatus.FAILED, 1, "no engine")
    await h.store.record_undo(failed)
    earlier = {"undo_id": "r1-u2", "service": "api", "action": "resume", "status": "done"}
    failed_then = {**earlier, "undo_id": "r1-u1", "action": "remove", "status": "failed"}
    await h.store.append_events(
        [
            JournalEvent("r1", 1, 10, "undo.recovered", {**earlier, "detail": "resumed"}),
            JournalEvent(
                "r1",
                2,
                20,
                RECOVERED_EVENT,
                {"undos": [failed_then]},
            ),
        ]
    )

    report = await recover_runs(h.store, h.deps, retry_failed=True, wall_clock_ms=lambda: NOW_MS)

    assert report.updated_runs == ("r1",) and report.aborted_runs == ()
    rebuilt = aborted_result(h.store.runs["r1"], h.store.events_by_run["r1"])
    assert {(u.undo_id, u.status) for u in rebuilt.undos} == {("r1-u1", "done"), ("r1-u2", "done")}
    assert "undo failed" not in rebuilt.reason

"""Reports of a run whose coordinator died: rebuilt from what the store kept.

The journal is durable up to each fault's injection (the ledger flushes it
before every fault), so the steps that ran, the faults and their recoveries can
be read back from the stored events. Steps that started but have no stored end
are reported as errors (events are stored in batches, so a step may have ended
up to a second before the coordinator died); checks were never judged. The
undo's outcome comes from the ``undo.recovered`` event that whoever performed the
undo appended as it finished it (the latest for each undo: one that failed and
was done by a later ``recover`` is shown done), and from ``run.recovered``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from test_coordinator.engine.results import (
    Outcome,
    Recovery,
    RunResult,
    Status,
    StepResult,
    UndoResult,
)
from test_coordinator.ports.storage import JournalEvent, RunRecord, RunStore

DIED = "no end recorded: the coordinator died during this step (or within a second of its end)"


async def write_aborted_reports(store: RunStore, run_id: str) -> list[Path]:
    """journal.json, junit.xml and report.html of an aborted run, in its run folder."""
    from test_coordinator.reporting import write_run_reports

    run = await store.get_run(run_id)
    if run is None or not run.summary.get("run_dir"):
        return []
    events = await store.events(run_id)
    return write_run_reports(aborted_result(run, events))


def aborted_result(run: RunRecord, events: Sequence[JournalEvent]) -> RunResult:
    summary = run.summary
    ordered = sorted(events, key=lambda e: e.seq)
    steps: dict[str, StepResult] = {}
    setup: StepResult | None = None
    recoveries: dict[tuple[str, str], Recovery] = {}
    undos: dict[str, UndoResult] = {}  # by undo id: the latest word on each wins
    last_ms = 0.0
    for event in ordered:
        data = event.data
        at = _ms(data.get("at_ms", event.at_ms))
        last_ms = max(last_ms, at)
        if event.kind == "step.started":
            step_id = str(data.get("step"))
            steps[step_id] = StepResult(
                step_id,
                str(data.get("name", step_id)),
                str(data.get("kind", "")),
                Status.ERROR,
                at,
                None,
                DIED,
                tuple(str(t) for t in data.get("targets") or ()),
            )
        elif event.kind == "step.finished":
            step_id = str(data.get("step"))
            started = steps.get(step_id)
            if started is not None:
                steps[step_id] = StepResult(
                    step_id,
                    started.name,
                    started.kind,
                    _status(data.get("status")),
                    started.started_at_ms,
                    at,
                    str(data.get("detail", "")),
                    started.targets,
                    data.get("value"),
                )
        elif event.kind == "setup.started":
            names = tuple(str(s) for s in data.get("services") or ())
            setup = StepResult(
                "setup", "start services", "setup", Status.ERROR, at, None, DIED, names
            )
        elif event.kind == "setup.finished" and setup is not None:
            setup = StepResult(
                "setup",
                setup.name,
                "setup",
                _status(data.get("status")),
                setup.started_at_ms,
                at,
                str(data.get("detail", "")),
                setup.targets,
            )
        elif event.kind == "fault.injected":
            key = (str(data.get("service")), str(data.get("step")))
            recoveries[key] = Recovery(
                key[0],
                key[1],
                str(data.get("step")),
                str(data.get("fault", "")),
                at,
                restore=str(data.get("restore") or ""),
            )
        elif event.kind == "fault.restored":
            key = (str(data.get("service")), str(data.get("step")))
            if key in recoveries:
                recoveries[key] = replace(
                    recoveries[key], restored_at_ms=at, restored_by=str(data.get("by", ""))
                )
        elif event.kind == "fault.recovered":
            key = (str(data.get("service")), str(data.get("step")))
            if key in recoveries:
                recoveries[key] = replace(recoveries[key], recovered_at_ms=at)
        elif event.kind == "undo.recovered":
            undo = _undo(data)
            undos[undo.undo_id] = undo
        elif event.kind == "run.recovered":
            for item in data.get("undos") or ():
                if isinstance(item, Mapping):
                    undo = _undo(item)
                    undos[undo.undo_id] = undo
    reason = str(summary.get("reason") or "the coordinator died before the run ended")
    failed = [u for u in undos.values() if u.status != "done"]
    if failed:
        reason += "; undo failed: " + "; ".join(
            f"{u.action} {u.service}: {u.detail}" for u in failed
        )
    ended = run.ended_at_ms or run.started_at_ms
    return RunResult(
        run_id=run.run_id,
        scenario=run.scenario,
        file=Path(str(summary.get("file", ""))),
        outcome=Outcome.ABORTED,
        reason=reason,
        seed=int(summary.get("seed") or 0),
        started_at_epoch_ms=run.started_at_ms,
        duration_ms=max(float(ended - run.started_at_ms), last_ms),
        run_dir=Path(str(summary["run_dir"])),
        setup=setup,
        steps=tuple(steps.values()),
        recoveries=tuple(
            r if r.recovered_at_ms is not None else _unrecovered(r) for r in recoveries.values()
        ),
        undos=tuple(undos.values()),
        events=tuple(ordered),
    )


def _unrecovered(recovery: Recovery) -> Recovery:
    return replace(
        recovery,
        recovered_at_ms=None,
        detail="not seen healthy again before the coordinator died",
    )


def _undo(data: Mapping[str, Any]) -> UndoResult:
    return UndoResult(
        str(data.get("undo_id", "")),
        str(data.get("service", "")),
        str(data.get("action", "")),
        str(data.get("status", "")),
        str(data.get("detail", "")),
    )


def _status(value: Any) -> Status:
    try:
        return Status(str(value))
    except ValueError:
        return Status.ERROR


def _ms(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0

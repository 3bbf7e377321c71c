"""Recovery after a crash, for every caller: the guard, ``recover``, ``run`` and ``serve``.

Undo what dead coordinators left (:func:`~test_coordinator.engine.recovery.recover_runs`),
then write each aborted run's journal.json, junit.xml and report.html.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.recovery import RecoveryReport, recover_runs
from test_coordinator.ports.storage import RunStore
from test_coordinator.reporting.terminal import PlainTerminal, Terminal

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNDO_FAILED = 3
GUARD_RETRY_PAUSES_S = (1.0, 2.0, 4.0)
"""The guard's pauses before trying failed undos again (then ``recover`` is left to)."""


async def recover_and_report(
    store: RunStore,
    deps: EngineDeps,
    *,
    only: Collection[str] | None = None,
    retry_failed: bool = False,
) -> RecoveryReport:
    from test_coordinator.reporting.aborted import write_aborted_reports

    report = await recover_runs(store, deps, only=only, retry_failed=retry_failed)
    for run_id in (*report.aborted_runs, *report.updated_runs):
        try:
            await write_aborted_reports(store, run_id)
        except Exception as exc:
            log.warning("run %s: reports of the aborted run not written: %s", run_id, exc)
    return report


def print_recovery(terminal: Terminal, report: RecoveryReport, *, quiet_if_empty: bool) -> None:
    if report.empty:
        if not quiet_if_empty:
            terminal.line("recover: nothing to undo; no run was left behind")
        return
    for undo in report.undos:
        terminal.line(
            f"recover: run {undo.run_id}: {undo.action} {undo.service}: {undo.detail} "
            f"[{undo.status.value}]",
        )
    for run_id in report.aborted_runs:
        terminal.line(f"recover: run {run_id} marked aborted; reports written")
    for run_id in report.updated_runs:
        terminal.line(f"recover: run {run_id}: its reports written again")
    for note in report.skipped:
        terminal.line(f"recover: left alone: {note}")


async def recover_command(terminal: Terminal) -> int:
    """``test-coordinator recover``: 0 when everything left behind was undone and verified."""
    from test_coordinator.engine.wiring import runtime_deps
    from test_coordinator.entrypoints.scenario_session import StoreUnavailable, open_store

    try:
        async with open_store() as store, runtime_deps(store) as deps:
            # Explicitly asked for: the undos that failed before are tried again too.
            report = await recover_and_report(store, deps, retry_failed=True)
    except StoreUnavailable as exc:
        terminal.line(f"test-coordinator: {exc}", "red")
        return exc.code
    print_recovery(terminal, report, quiet_if_empty=False)
    return EXIT_OK if report.all_undone else EXIT_UNDO_FAILED


async def recover_in_guard(run_id: str) -> int:
    """The guard's work once its coordinator died: undo that one run and report it."""
    from test_coordinator.engine.wiring import runtime_deps
    from test_coordinator.entrypoints.scenario_session import StoreUnavailable, open_store

    terminal = PlainTerminal()
    try:
        async with open_store() as store, runtime_deps(store) as deps:
            report = await recover_and_report(store, deps, only={run_id})
            print_recovery(terminal, report, quiet_if_empty=False)
            for pause_s in GUARD_RETRY_PAUSES_S:
                if report.all_undone:
                    break
                # A proxy or an engine that did not answer may only have been slow or
                # restarting: try what failed again, a few times, before leaving it.
                await asyncio.sleep(pause_s)
                terminal.line(f"guard: trying the failed undos of run {run_id} again")
                report = await recover_and_report(store, deps, only={run_id}, retry_failed=True)
                print_recovery(terminal, report, quiet_if_empty=True)
                if report.all_undone:
                    await _rewrite_reports(store, run_id)
    except StoreUnavailable as exc:
        terminal.line(f"guard: {exc}")
        return exc.code
    return EXIT_OK if report.all_undone else EXIT_UNDO_FAILED


async def _rewrite_reports(store: RunStore, run_id: str) -> None:
    from test_coordinator.reporting.aborted import write_aborted_reports

    try:
        await write_aborted_reports(store, run_id)
    except Exception as exc:
        log.warning("run %s: reports of the aborted run not rewritten: %s", run_id, exc)

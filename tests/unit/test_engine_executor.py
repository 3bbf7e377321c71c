"""The executor with fake processes and probes: phases, outcomes, undo in every ending."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import ClassVar

import pytest
from engine_fakes import Harness, harness, until
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunControl, RunOptions, run_scenario
from test_coordinator.engine.results import Outcome, RunResult, Status, UndoResult
from test_coordinator.ports.storage import RunStatus, UndoStatus
from test_coordinator.scenario.model import DEFAULT_RUN_TIMEOUT_S


def options(tmp_path: Path, seed: int = 7) -> RunOptions:
    return RunOptions(run_id="run-1", seed=seed, reports_dir=tmp_path, flush_interval_s=0.01)


async def run(h: Harness, body: str, tmp_path: Path, **kwargs: object) -> RunResult:
    return await run_scenario(scenario(body), h.deps, options(tmp_path), **kwargs)  # type: ignore[arg-type]


def fault_undos(result: RunResult) -> list[UndoResult]:
    """The undos of faults, without the removal of the services the run created."""
    return [u for u in result.undos if u.action != "remove"]


def kinds(result: RunResult) -> list[str]:
    return [event.kind for event in result.events]


async def test_restart_passes_and_measures_recovery(tmp_path: Path) -> None:
    """A restart is undone-registered before injection, recovers, and passes its check."""
    h = harness()

    result = await run(
        h,
        """
        steady_state: [{healthy: [api, db]}]
        steps:
          - restart: api
          - expect: {healthy: api, within: 1s}
        checks:
          - recovery_time: {service: api, max: 1s}
        """,
        tmp_path,
    )

    assert Outcome.PASSED == result.outcome, result.reason
    assert 0 == result.exit_code
    # api and db each have their removal recorded at setup, then the restart's undo:
    assert [3] == h.backend.pending_undos_at_injection
    assert all(u.status is UndoStatus.DONE for u in h.store.undos.values())
    [recovery] = result.recoveries
    assert ("api", "restart") == (recovery.service, recovery.fault)
    assert recovery.recovery_ms is not None and 0 <= recovery.recovery_ms < 1000
    assert h.backend.closed
    assert RunStatus.PASSED == h.store.runs["run-1"].status
    assert [e.seq for e in h.store.events_by_run["run-1"]] == [e.seq for e in result.events]


async def test_failed_check_still_undoes_the_fault(tmp_path: Path) -> None:
    """A paused service is resumed by the undo even though the run failed."""
    h = harness()

    result = await run(
        h,
        """
        steps:
          - pause: api
        checks:
          - probe: {http: {url: "fake://value/missing"}}
        """,
        tmp_path,
    )

    assert Outcome.FAILED == result.outcome
    assert "check 1" in result.reason and "no value missing" in result.reason
    assert h.backend.calls.index(("resume", "api")) < h.backend.calls.index(("remove", "api"))
    assert [("resume", "done")] == [(u.action, u.status) for u in fault_undos(result)]
    assert {("remove", "api"), ("remove", "db")} == {
        (u.action, u.service) for u in result.undos if u.status == "done"
    } - {("resume", "api")}


async def test_background_always_fails_the_run_at_the_violation(tmp_path: Path) -> None:
    """The run stops when the background condition breaks, not when the 5 s wait ends."""
    h = harness()
    started = time.monotonic()

    result = await run(
        h,
        """
        steps:
          - background: {always: {healthy: api, every: 1ms}}
          - wait: 20ms
          - pause: api
          - name: long wait
            wait: 5s
          - wait: 1ms
        """,
        tmp_path,
    )

    assert time.monotonic() - started < 2.0
    assert Outcome.FAILED == result.outcome
    assert "broke" in result.reason
    statuses = {s.name: s.status for s in result.steps}
    assert Status.ERROR == statuses["long wait"]
    assert Status.SKIPPED == statuses["wait 1ms"]
    assert ("resume", "api") in h.backend.calls
    assert "condition.violated" in kinds(result)


async def test_foreground_always_fails_at_first_violation(tmp_path: Path) -> None:
    """An always window of 5 s ends at the first bad sample."""
    h = harness()
    asyncio.get_running_loop().call_later(0.05, h.world.sick.add, "api")
    started = time.monotonic()

    result = await run(
        h,
        """
        steps:
          - always: {healthy: api, for: 5s, every: 1ms}
        """,
        tmp_path,
    )

    assert time.monotonic() - started < 2.0
    assert Outcome.FAILED == result.outcome
    [step] = result.steps
    assert Status.FAILED == step.status and "broke at" in step.detail


async def test_step_timeout_is_enforced_and_undo_runs(tmp_path: Path) -> None:
    """A probe that hangs is cut off at the step's timeout."""
    h = harness()
    h.world.values["slow"] = 1
    h.world.delays["fake://value/slow"] = 30

    result = await run(
        h,
        """
        steps:
          - pause: api
          - probe: {http: {url: "fake://value/slow"}}
            timeout: 50ms
        """,
        tmp_path,
    )

    assert Outcome.FAILED == result.outcome
    assert "timed out after 50ms" in result.steps[1].detail
    assert ("resume", "api") in h.backend.calls


async def test_run_timeout_is_enforced(tmp_path: Path) -> None:
    """The run's own timeout stops a long wait; the fault is undone."""
    h = harness()
    started = time.monotonic()

    result = await run(
        h,
        """
        timeout: 100ms
        steps:
          - stop: db
          - wait: 10s
        """,
        tmp_path,
    )

    assert time.monotonic() - started < 2.0
    assert Outcome.TIMED_OUT == result.outcome
    assert "100ms" in result.reason and "step 2" in result.reason
    # Starting db again only to remove it would prove nothing: the remove supersedes it.
    [start] = fault_undos(result)
    assert ("start", "done") == (start.action, start.status)
    assert "superseded" in start.detail
    assert ("start", "db") not in h.backend.calls[-3:]
    assert ("remove", "db") in h.backend.calls[-3:] and h.backend.calls[-1] == ("close", "*")


async def test_cancel_by_caller_undoes_then_propagates(tmp_path: Path) -> None:
    """Cancelling the run task (Ctrl-C) resumes the paused service before CancelledError."""
    h = harness()
    task = asyncio.create_task(run(h, "steps: [{pause: api}, {wait: 10s}]", tmp_path))
    await until(lambda: bool(h.backends) and ("pause", "api") in h.backend.calls)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert ("resume", "api") in h.backend.calls
    assert h.backend.closed
    assert RunStatus.ABORTED == h.store.runs["run-1"].status
    assert [] == await h.store.pending_undos()


async def test_interrupt_returns_an_interrupted_result(tmp_path: Path) -> None:
    """RunControl.interrupt (the SIGTERM handler) ends the run with outcome interrupted."""
    h = harness()
    control = RunControl()
    task = asyncio.create_task(
        run(h, "steps: [{pause: api}, {wait: 10s}]", tmp_path, control=control)
    )
    await until(lambda: bool(h.backends) and ("pause", "api") in h.backend.calls)

    assert control.interrupt("SIGTERM")
    assert not control.interrupt("SIGTERM")
    result = await task

    assert Outcome.INTERRUPTED == result.outcome
    assert 130 == result.exit_code
    assert "SIGTERM" in result.reason
    assert ("resume", "api") in h.backend.calls


async def test_steady_state_failure_before_means_no_fault(tmp_path: Path) -> None:
    """If the steady state does not hold, no step runs."""
    h = harness()

    result = await run(
        h,
        """
        steady_state: [{healthy: db}, {http: {url: "fake://value/ready"}}]
        steps: [{pause: api}]
        """,
        tmp_path,
    )

    assert Outcome.NOT_STARTED == result.outcome
    assert "no value ready" in result.reason
    assert 1 == result.exit_code
    assert RunStatus.ERROR == h.store.runs["run-1"].status
    assert ("pause", "api") not in h.backend.calls
    assert Status.SKIPPED == result.steps[0].status


async def test_steady_state_failure_after_means_deviated(tmp_path: Path) -> None:
    h = harness()

    result = await run(
        h,
        """
        steady_state: [{healthy: db}]
        steps: [{stop: db}]
        """,
        tmp_path,
    )

    assert Outcome.DEVIATED == result.outcome
    assert "after the last step" in result.reason
    assert ("remove", "db") in h.backend.calls[-3:]


async def test_setup_failure_is_reported_without_steps(tmp_path: Path) -> None:
    h = harness()
    original = h.deps.targets_factory

    def failing_factory(specs, scope):  # type: ignore[no-untyped-def]
        targets = original(specs, scope)
        h.backend.fail_start.add("db")
        return targets

    from dataclasses import replace

    result = await run_scenario(
        scenario("steps: [{pause: api}]"),
        replace(h.deps, targets_factory=failing_factory),
        options(tmp_path),
    )

    assert Outcome.NOT_STARTED == result.outcome
    assert result.setup is not None and Status.FAILED == result.setup.status
    assert "right after start" in result.reason
    assert h.backend.closed


async def test_random_target_is_replayed_by_seed(tmp_path: Path) -> None:
    """The same seed picks the same service, and the journal says which."""
    picks = []
    for _ in range(2):
        h = harness()
        result = await run_scenario(
            scenario("steps: [{restart: {random: [api, db]}}]"), h.deps, options(tmp_path, seed=42)
        )
        [chosen] = [e for e in result.events if e.kind == "targets.chosen"]
        picks.append((tuple(chosen.data["chosen"]), result.steps[0].targets))
    assert picks[0] == picks[1]
    assert picks[0][0] == picks[0][1]


async def test_captured_value_is_used_by_a_later_step(tmp_path: Path) -> None:
    h = harness()
    h.world.values["token"] = {"id": "abc"}
    h.world.values["abc"] = 5

    result = await run(
        h,
        """
        steps:
          - probe: {http: {url: "fake://value/token"}, json_path: id}
            capture: token
          - probe: {http: {url: "fake://value/${token}"}, min: 5, max: 5}
        checks:
          - probe: {http: {url: "fake://value/token"}, json_path: id, equals: "${token}"}
        """,
        tmp_path,
    )

    assert Outcome.PASSED == result.outcome, result.reason
    assert "abc" == result.steps[0].value
    assert 5 == result.steps[1].value


async def test_parallel_failure_cancels_siblings(tmp_path: Path) -> None:
    h = harness()
    started = time.monotonic()

    result = await run(
        h,
        """
        steps:
          - parallel:
              - wait: 5s
              - probe: {http: {url: "fake://value/none"}}
        """,
        tmp_path,
    )

    assert time.monotonic() - started < 2.0
    assert Outcome.FAILED == result.outcome
    by_id = {s.step_id: s.status for s in result.steps}
    assert {"1": Status.FAILED, "1.1": Status.ERROR, "1.2": Status.FAILED} == by_id


async def test_recovery_check_fails_with_a_clear_message(tmp_path: Path) -> None:
    """A service that stays down after a stop never recovers; the check says so."""
    h = harness()

    result = await run(
        h,
        """
        steps:
          - name: stop db
            stop: db
          - start: db
        checks:
          - recovery_time: {service: db, max: 0ms}
        """,
        tmp_path,
    )

    assert Outcome.FAILED == result.outcome
    [check] = result.checks
    assert "db after stop (step 1, stop db): healthy again after" in check.detail
    assert "more than the allowed 0ms" in check.detail


async def test_a_failed_undo_is_an_infrastructure_error(tmp_path: Path) -> None:
    """Even after a failed step: the system may not be as it was found."""
    h = harness()
    original = h.deps.targets_factory

    def factory(specs, scope):  # type: ignore[no-untyped-def]
        targets = original(specs, scope)

        async def refuse(name: str) -> None:
            raise RuntimeError(f"{name} will not continue")

        h.backend.resume = refuse  # type: ignore[method-assign]
        return targets

    from dataclasses import replace

    result = await run_scenario(
        scenario('steps: [{pause: api}, {probe: {http: {url: "fake://value/none"}}}]'),
        replace(h.deps, targets_factory=factory),
        options(tmp_path),
    )

    assert Outcome.ERROR == result.outcome
    assert 3 == result.exit_code
    assert (
        "step 2" in result.reason
        and "then undo failed: resume api: api will not continue" in result.reason
    )
    assert [("resume", "failed")] == [(u.action, u.status) for u in fault_undos(result)]
    assert h.backend.closed


async def test_an_undo_that_cannot_be_recorded_stops_the_fault(tmp_path: Path) -> None:
    """No durable undo, no fault: the pause is never sent."""
    h = harness()

    async def unavailable(undo: object) -> None:
        raise ConnectionError("store is down")

    h.store.record_undo = unavailable  # type: ignore[method-assign]

    result = await run(h, "steps: [{pause: api}]", tmp_path)

    assert Outcome.ERROR == result.outcome and 3 == result.exit_code
    assert "cannot record the undo of api, so the fault was not injected" in result.reason
    assert ("pause", "api") not in h.backend.calls


async def test_stop_with_a_chosen_signal(tmp_path: Path) -> None:
    """``stop`` with ``signal: SIGINT`` sends SIGINT first; its undo is a start, as for SIGTERM."""
    h = harness()

    result = await run(h, "steps: [{stop: api, signal: SIGINT, grace: 1s}]", tmp_path)

    assert ("stop:2", "api") in h.backend.calls
    assert "stop api with SIGINT" == result.steps[0].name
    assert [("start", "done")] == [(u.action, u.status) for u in fault_undos(result)]


class RecordingGuard:
    """A guard that notes whether it was armed and told the run ended."""

    made: ClassVar[list[RecordingGuard]] = []

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self.armed = self.disarmed = False
        RecordingGuard.made.append(self)

    def arm(self, lifetime_s: float) -> dict[str, object]:
        self.armed = True
        self.lifetime_s = lifetime_s
        return {"pid": 1}

    def disarm(self) -> None:
        self.disarmed = True


async def test_an_interrupt_before_the_guard_is_armed_still_ends_with_it_disarmed(
    tmp_path: Path,
) -> None:
    """A cancel that arrives as the run starts takes effect once the guard is armed and the
    run stored: the run ends interrupted, with the chosen status, and its guard disarmed."""
    h = harness()
    RecordingGuard.made.clear()
    deps = dataclasses.replace(h.deps, guard=RecordingGuard)
    control = RunControl()
    assert control.interrupt("cancelled through the API", RunStatus.CANCELLED)

    result = await run_scenario(
        scenario("steps: [{pause: api}, {wait: 10s}]"), deps, options(tmp_path), control=control
    )

    [guard] = RecordingGuard.made
    assert (True, True) == (guard.armed, guard.disarmed)
    # the run's timeout, its undo budget and a margin: past that, a stopped run is ended
    assert guard.lifetime_s == DEFAULT_RUN_TIMEOUT_S + options(tmp_path).undo_timeout_s + 10.0
    assert Outcome.INTERRUPTED == result.outcome
    assert RunStatus.CANCELLED == result.run_status == h.store.runs[result.run_id].status
    assert ("pause", "api") not in h.backend.calls


async def test_a_run_its_caller_abandoned_leaves_its_guard_armed(tmp_path: Path) -> None:
    """The service stopped waiting for this run's undo: the guard must not be told the run
    ended, so that it undoes whatever is left once the service is gone."""
    h = harness()
    RecordingGuard.made.clear()
    deps = dataclasses.replace(h.deps, guard=RecordingGuard)
    control = RunControl()
    task = asyncio.create_task(
        run_scenario(
            scenario("steps: [{pause: api}, {wait: 10s}]"), deps, options(tmp_path), control=control
        )
    )
    await until(lambda: bool(h.backends) and ("pause", "api") in h.backend.calls)

    control.interrupt("the service is stopping")
    control.abandon()
    await task

    [guard] = RecordingGuard.made
    assert (True, False) == (guard.armed, guard.disarmed)

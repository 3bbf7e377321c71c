"""Recovery measurement: what counts as the first healthy probe after a fault."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from engine_fakes import FakeBackend, fake_targets, harness
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.results import Outcome


class SlowRestartBackend(FakeBackend):
    """The old process keeps answering for 50 ms of the restart, then a new one runs."""

    async def restart(self, name: str) -> str:
        self.calls.append(("restart", name))
        await asyncio.sleep(0.05)  # the old process still serves while it shuts down
        self.pids[name] = next(self._pids)
        return f"pid {self.pids[name]}"


async def test_answers_from_the_old_process_do_not_count(tmp_path: Path) -> None:
    h = harness()
    deps = replace(
        h.deps,
        targets_factory=lambda specs, scope: fake_targets(
            _track(h, SlowRestartBackend(scope.log_dir)), specs
        ),
    )

    result = await run_scenario(
        scenario("steps: [{restart: api}, {expect: {healthy: api, within: 1s}}]"),
        deps,
        RunOptions("r", 1, tmp_path),
    )

    assert Outcome.PASSED == result.outcome, result.reason
    [recovery] = result.recoveries
    assert recovery.recovery_ms is not None and recovery.recovery_ms >= 50


def _track(h, backend: FakeBackend) -> FakeBackend:  # type: ignore[no-untyped-def]
    h.world.backend = backend
    h.backends.append(backend)
    return backend


async def test_an_expect_probe_counts_when_the_watcher_is_slow(tmp_path: Path) -> None:
    """The watcher polls every 10 s here; the expect step's probe observes the recovery."""
    h = harness(poll_interval_s=10.0)

    result = await run_scenario(
        scenario(
            """
            steps:
              - stop: db
              - start: db
              - expect: {healthy: db, within: 1s, every: 1ms}
            checks:
              - recovery_time: {service: db, max: 5s}
            """
        ),
        h.deps,
        RunOptions("r", 1, tmp_path),
    )

    assert Outcome.PASSED == result.outcome, result.reason
    [recovery] = result.recoveries
    assert recovery.recovery_ms is not None and recovery.recovery_ms < 1000


async def test_pause_recovers_only_after_resume(tmp_path: Path) -> None:
    h = harness()

    result = await run_scenario(
        scenario("steps: [{pause: api}, {wait: 30ms}, {resume: api}]"),
        h.deps,
        RunOptions("r", 1, tmp_path),
    )

    [recovery] = result.recoveries
    assert "pause" == recovery.fault
    assert recovery.recovery_ms is not None and recovery.recovery_ms >= 30
    # the resume step settled the undo: only the services' removal is left
    assert [] == [u for u in result.undos if u.action != "remove"]


async def test_a_second_fault_supersedes_an_unrecovered_one(tmp_path: Path) -> None:
    h = harness()

    result = await run_scenario(
        scenario("steps: [{stop: db}, {start: db}, {kill: db}, {start: db}]"),
        h.deps,
        RunOptions("r", 1, tmp_path),
    )

    first, second = result.recoveries
    assert ("stop", "kill SIGKILL") == (first.fault, second.fault)
    assert second.recovery_ms is not None
    assert first.recovery_ms is not None or "before the next fault" in first.detail


async def test_kill_with_a_stopping_signal_registers_a_resume(tmp_path: Path) -> None:
    """SIGSTOP freezes the service: its undo resumes it (never starts a second copy)."""
    h = harness()

    result = await run_scenario(
        scenario("steps: [{kill: api, signal: SIGSTOP}]"), h.deps, RunOptions("r", 1, tmp_path)
    )

    assert ("kill:19", "api") in h.backend.calls
    assert [("resume", "api", "done")] == [
        (u.action, u.service, u.status) for u in result.undos if u.action != "remove"
    ]
    assert h.backend.calls.index(("resume", "api")) < h.backend.calls.index(("remove", "api"))
    assert ("start", "api") not in h.backend.calls[2:]


async def test_a_stopping_signal_is_a_fault_measured_like_a_pause(tmp_path: Path) -> None:
    """kill with SIGSTOP freezes the service as pause does: its recovery is measured to the
    same process's first healthy answer after the resume, and judged by recovery_time."""
    h = harness()

    result = await run_scenario(
        scenario(
            """
            steps:
              - {kill: api, signal: SIGSTOP}
              - wait: 30ms
              - resume: api
            checks:
              - recovery_time: {service: api, max: 5s}
            """
        ),
        h.deps,
        RunOptions("r", 1, tmp_path),
    )

    assert Outcome.PASSED == result.outcome, result.reason
    [recovery] = result.recoveries
    assert "kill SIGSTOP" == recovery.fault
    assert recovery.recovery_ms is not None and recovery.recovery_ms >= 30


async def test_kill_with_a_handled_signal_still_registers_its_undo(tmp_path: Path) -> None:
    h = harness()

    result = await run_scenario(
        scenario("steps: [{kill: api, signal: SIGUSR1}]"), h.deps, RunOptions("r", 1, tmp_path)
    )

    assert ("kill:10", "api") in h.backend.calls
    assert [("start", "api")] == [
        (u.action, u.service) for u in result.undos if u.action != "remove"
    ]
    assert () == result.recoveries

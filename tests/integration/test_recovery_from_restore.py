"""Recovery from the restore against a real service (the examples' tiny_server): a pause
held 1 s counts in the recovery from the injection, not in the one from the resume."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from test_coordinator.engine.control import RunOptions, new_run_id
from test_coordinator.engine.executor import run_scenario
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import Outcome, RunResult, Status, StepResult
from test_coordinator.reporting.journal_json import journal_document
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.loader import load_scenario

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"

SCENARIO = f"""
version: 1
name: recovery-from-restore
timeout: 1m
ports: [prices_port]
services:
  prices:
    process:
      command: ${{python}}
      args: [tiny_server.py, --port, "${{prices_port}}", --name, prices]
      cwd: {EXAMPLES}
      stop_grace: 2s
    health:
      http: {{url: "http://127.0.0.1:${{prices_port}}/health", timeout: 200ms}}
steady_state:
  - healthy: prices
steps:
  - name: freeze
    pause: prices
  - name: hold
    wait: 1s
  - name: thaw
    resume: prices
  - expect: {{healthy: prices, within: 2s}}
  - name: halt
    stop: prices
  - name: boot
    start: prices
  - expect: {{healthy: prices, within: 10s}}
checks:
  - recovery_time: {{service: prices, step: freeze, max: 10s, max_from_restore: 200ms}}
  - recovery_time: {{service: prices, step: halt, max_from_restore: 10s}}
"""


@pytest.fixture
async def result(deps: EngineDeps, tmp_path: Path) -> RunResult:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(SCENARIO))
    run_id = new_run_id()
    reports = tmp_path / "reports"
    loaded = load_scenario(path, allocate_port=free_port, run_id=run_id, reports_dir=reports)
    return await run_scenario(loaded, deps, RunOptions(run_id=run_id, seed=1, reports_dir=reports))


def step(result: RunResult, name: str) -> StepResult:
    [found] = [s for s in result.steps if s.name == name]
    return found


def within(moment: float | None, of: StepResult) -> bool:
    assert moment is not None and of.started_at_ms is not None and of.ended_at_ms is not None
    return of.started_at_ms <= moment <= of.ended_at_ms


async def test_a_pause_held_1s_recovers_fast_from_the_resume(result: RunResult) -> None:
    assert Outcome.PASSED == result.outcome, result.reason
    pause, _ = result.recoveries
    assert ("pause", "resume", "step 3 (thaw)") == (pause.fault, pause.restore, pause.restored_by)
    assert within(pause.restored_at_ms, step(result, "thaw"))
    assert pause.recovery_ms is not None and pause.recovery_ms >= 1000.0
    assert pause.recovery_from_restore_ms is not None
    assert 0.0 < pause.recovery_from_restore_ms < 200.0
    freeze_check, _ = result.checks
    assert Status.PASSED == freeze_check.status, freeze_check.detail
    assert pause.recovery_ms == freeze_check.value


async def test_a_stop_recovers_from_its_start(result: RunResult) -> None:
    """From the start call: the new process's start-up is the whole of it."""
    assert Outcome.PASSED == result.outcome, result.reason
    _, stop = result.recoveries
    assert ("stop", "start", "step 6 (boot)") == (stop.fault, stop.restore, stop.restored_by)
    assert within(stop.restored_at_ms, step(result, "boot"))
    assert stop.recovery_ms is not None and stop.recovery_from_restore_ms is not None
    assert 0.0 < stop.recovery_from_restore_ms < stop.recovery_ms
    assert stop.restored_at_ms is not None and stop.recovered_at_ms is not None
    halt = step(result, "halt")
    assert halt.ended_at_ms is not None and stop.restored_at_ms >= halt.ended_at_ms
    _, halt_check = result.checks
    assert Status.PASSED == halt_check.status, halt_check.detail
    assert stop.recovery_from_restore_ms == halt_check.value


async def test_the_journal_records_the_restore(result: RunResult) -> None:
    document = journal_document(result)

    pause, stop = document["recoveries"]
    assert pause["recovery_from_restore_ms"] < 200.0 <= 1000.0 <= pause["recovery_ms"]
    assert stop["restored_by"] == "step 6 (boot)"
    restored = [e for e in document["events"] if e["kind"] == "fault.restored"]
    assert [("1", "resume"), ("5", "start")] == [
        (e["data"]["step"], e["data"]["restore"]) for e in restored
    ]

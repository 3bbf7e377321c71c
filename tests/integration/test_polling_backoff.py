"""Polling backs off while a starting service refuses, and only then.

The service becomes ready 1.5 s after it starts (it creates a file). Its health
probe is a command that notes each call and fails until the file is there: a
refusal, as ``pg_isready`` gives while PostgreSQL starts up. Polled every 50 ms
that is some 30 calls; backing off (50, 100, 200, 200 ... ms) it is about 10.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from test_coordinator.engine.control import RunOptions, new_run_id
from test_coordinator.engine.executor import run_scenario
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import Outcome
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.loader import load_scenario

pytestmark = pytest.mark.slow

READY_AFTER_S = 1.5

SCENARIO = """
version: 1
name: backoff
timeout: 1m
services:
  slow:
    process:
      command: /bin/sh
      args: [-c, "sleep {ready_after}; touch ready; exec sleep 60"]
      cwd: "{work}"
    start_timeout: 10s
    health:
      command: {{argv: [/bin/sh, -c, "echo . >> calls; test -f ready"], cwd: "{work}"}}
      {pace}
steps:
  - wait: 0ms
"""


async def calls_until_ready(deps: EngineDeps, tmp_path: Path, pace: str) -> int:
    work = tmp_path / pace.replace(" ", "_").replace(":", "") if pace else tmp_path / "default"
    work.mkdir()
    path = work / "scenario.yaml"
    path.write_text(
        textwrap.dedent(SCENARIO).format(work=work, pace=pace, ready_after=READY_AFTER_S)
    )
    run_id = new_run_id()
    loaded = load_scenario(path, allocate_port=free_port, run_id=run_id, reports_dir=work)
    result = await run_scenario(loaded, deps, RunOptions(run_id=run_id, seed=1, reports_dir=work))
    assert result.outcome is Outcome.PASSED, result.reason
    return len((work / "calls").read_text().splitlines())


async def test_a_refusing_command_probe_backs_off(deps: EngineDeps, tmp_path: Path) -> None:
    steady = await calls_until_ready(deps, tmp_path, "max_every: 50ms")
    backing_off = await calls_until_ready(deps, tmp_path, "")

    # 1.5 s at 50 ms: ~30 calls. Backing off to 200 ms (the default, 4 x 50 ms): ~10.
    assert steady >= 20, steady
    assert backing_off <= 14, backing_off

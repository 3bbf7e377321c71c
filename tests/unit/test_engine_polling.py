"""How often the engine polls: ``every:`` on health probes, 50 ms at least for commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_fakes import harness
from engine_scenarios import scenario

from test_coordinator.engine.executor import RunOptions, run_scenario
from test_coordinator.engine.results import Outcome
from test_coordinator.scenario.probes import ProbeSpec

SLOW_POLLED = """
services:
  api:
    process: {command: fake-api}
    health: {http: {url: "fake://api/health"}, every: 40ms}
"""


def test_a_command_probe_is_polled_no_faster_than_every_50ms() -> None:
    command = ProbeSpec.model_validate({"command": {"argv": ["true"]}})
    http = ProbeSpec.model_validate({"http": {"url": "http://x/"}})
    chosen = ProbeSpec.model_validate({"http": {"url": "http://x/"}, "every": "250ms"})

    assert 0.05 == command.interval(0.005)
    assert 0.005 == http.interval(0.005)
    assert 0.25 == chosen.interval(0.005)
    with pytest.raises(ValueError, match="allowed: 50ms or more"):
        ProbeSpec.model_validate({"command": {"argv": ["true"]}, "every": "10ms"})


async def test_setup_polls_a_service_at_its_every(tmp_path: Path) -> None:
    """Unhealthy for 200 ms: polled about every 40 ms (5 or 6 times), not every 1 ms."""
    h = harness(poll_interval_s=0.001)
    h.world.sick.add("api")
    asyncio.get_running_loop().call_later(0.2, h.world.sick.discard, "api")

    result = await run_scenario(
        scenario("steps: [{wait: 0ms}]", services=SLOW_POLLED), h.deps, RunOptions("r", 1, tmp_path)
    )

    assert Outcome.PASSED == result.outcome, result.reason
    assert 4 <= h.world.probe_count <= 12

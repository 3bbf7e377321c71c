"""Log checks with ``after:`` against real services: a line written just before the step
must not count, a line written after it must. A local process writes its log file
directly; a container's log is copied from the engine, and must be copied before the
position is taken."""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from test_coordinator.engine.control import RunOptions, new_run_id
from test_coordinator.engine.executor import run_scenario
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import CheckResult, RunResult, Status
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.loader import load_scenario

pytestmark = pytest.mark.slow

BUSYBOX = "localhost/tc-busybox:latest"

# Prints "ready" once it handles SIGUSR1, then "poke N" at each SIGUSR1.
POKED = textwrap.dedent(
    """
    import signal
    count = 0
    def poke(signum, frame):
        global count
        count += 1
        print(f"poke {count}", flush=True)
    signal.signal(signal.SIGUSR1, poke)
    print("ready", flush=True)
    while True:
        signal.pause()
    """
)

STEPS_AND_CHECKS = """
steps:
  - name: first poke
    kill: poked
    signal: SIGUSR1
  - name: poke 1 written
    expect: {{command: {{argv: {seen_1}, timeout: 5s}}, within: 10s, every: 20ms}}
  - name: second poke
    kill: poked
    signal: SIGUSR1
  - name: poke 2 written
    expect: {{command: {{argv: {seen_2}, timeout: 5s}}, within: 10s, every: 20ms}}
checks:
  - log: {{service: poked, present: "^poke", min_count: 2}}
  - log: {{service: poked, present: "^poke 1$", after: second poke}}
  - log: {{service: poked, present: "^poke", min_count: 1, after: second poke}}
  - log: {{service: poked, present: "^poke", min_count: 2, after: second poke}}
  - log: {{service: poked, absent: "^ready$", after: first poke}}
  - log: {{service: poked, present: "^poke 2$", after: second poke}}
"""


async def run_file(deps: EngineDeps, tmp_path: Path, text: str) -> RunResult:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    run_id = new_run_id()
    reports = tmp_path / "reports"
    loaded = load_scenario(path, allocate_port=free_port, run_id=run_id, reports_dir=reports)
    return await run_scenario(loaded, deps, RunOptions(run_id=run_id, seed=1, reports_dir=reports))


def assert_only_lines_after_count(result: RunResult) -> None:
    """The verdicts of :data:`STEPS_AND_CHECKS`' checks."""
    assert all(s.status is Status.PASSED for s in result.steps), result.steps
    whole, poke_1, one_after, two_after, no_ready, poke_2 = result.checks
    verdicts: list[CheckResult] = [whole, poke_1, one_after, two_after, no_ready, poke_2]
    assert [Status.PASSED, Status.FAILED, Status.PASSED, Status.FAILED] + [Status.PASSED] * 2 == [
        c.status for c in verdicts
    ], [c.detail for c in verdicts]
    assert 2 == whole.value
    assert poke_1.detail.startswith("no line matches /^poke 1$/ in ")
    assert poke_1.detail.endswith(" after step 'second poke' started")
    assert (1, 1) == (one_after.value, two_after.value)
    assert "found at poked.out.log:3 after step 'second poke' started: poke 2" == poke_2.detail


async def test_a_process_log_counts_only_what_follows_the_step(
    deps: EngineDeps, tmp_path: Path
) -> None:
    """'poke 1' is in the file (the expect saw it) before 'second poke' starts."""
    (tmp_path / "poked.py").write_text(POKED)
    log = "${run_dir}/logs/poked.out.log"
    text = textwrap.dedent(
        f"""
            version: 1
            name: log-after-process
            timeout: 1m
            services:
              poked:
                process:
                  command: ${{python}}
                  args: [poked.py]
                  cwd: {tmp_path}
                  stop_grace: 1s
                health:
                  command: {{argv: [grep, -qx, ready, "{log}"]}}
                  every: 50ms
            """
    ) + STEPS_AND_CHECKS.format(
        seen_1=json.dumps(["grep", "-qx", "poke 1", log]),
        seen_2=json.dumps(["grep", "-qx", "poke 2", log]),
    )

    result = await run_file(deps, tmp_path, text)

    assert_only_lines_after_count(result)
    marks = [e.data for e in result.events if e.kind == "log.marked"]
    out_log = str(result.run_dir / "logs" / "poked.out.log")
    assert [("1", 6), ("3", 13)] == [(m["step"], m["offsets"][out_log]) for m in marks]


def _engine_says(name: str, line: str) -> list[str]:
    """argv: exits 0 once the engine holds ``line`` in the container's output (without
    copying it to the log file)."""
    script = (
        "import sys, docker; "
        f"logs = docker.from_env().api.logs({name!r}, stdout=True, stderr=False); "
        f"sys.exit(0 if {line.encode()!r} in logs.splitlines() else 1)"
    )
    return [sys.executable, "-c", script]


@pytest.mark.docker
async def test_a_container_log_is_copied_before_its_position_is_taken(
    docker_host: str, deps: EngineDeps, tmp_path: Path
) -> None:
    """Nothing copies the container's output to the file between setup and the step, so
    without a copy at the mark, 'ready' and 'poke 1' would count as written after it."""
    name = f"tc-log-after-{uuid.uuid4().hex[:8]}"
    script = "n=0; trap 'n=$((n+1)); echo poke $n' USR1; echo ready; while :; do sleep 0.05; done"
    text = textwrap.dedent(
        f"""
            version: 1
            name: log-after-container
            timeout: 2m
            services:
              poked:
                docker:
                  image: {BUSYBOX}
                  name: {name}
                  command: [sh, -c, "{script}"]
                  stop_grace: 1s
                health:
                  command: {{argv: {json.dumps(_engine_says(name, "ready"))}, timeout: 10s}}
                  every: 100ms
            """
    ) + STEPS_AND_CHECKS.format(
        seen_1=json.dumps(_engine_says(name, "poke 1")),
        seen_2=json.dumps(_engine_says(name, "poke 2")),
    )

    result = await run_file(deps, tmp_path, text)

    assert_only_lines_after_count(result)

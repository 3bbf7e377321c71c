"""Setup against real processes: an exit before the service is healthy ends the wait at
once and says why; a command that daemonizes is named, and what it left is stopped."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_coordinator.engine.control import RunOptions, new_run_id
from test_coordinator.engine.executor import run_scenario
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.results import Outcome, RunResult
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.scenario.loader import load_text, placeholder_port
from test_coordinator.targets.process import procfs
from test_coordinator.targets.process.marker import marked_processes

pytestmark = pytest.mark.slow

# Double-forks out of its session, then clears its environment the way redis-server and
# nginx do (they overwrite it with their process title): the run's marker is gone from
# /proc/PID/environ, only what it inherited otherwise still ties it to the run.
ENV_CLEARING_DAEMON = textwrap.dedent(
    """
    import os, sys, time
    if os.fork():
        sys.exit(0)
    os.setsid()
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(fields[47]), int(fields[48])
    with open("/proc/self/mem", "r+b") as memory:
        memory.seek(start)
        memory.write(bytes(end - start))
    time.sleep(30)
    """
)

DAEMONIZED = re.compile(
    r"^setup: orders daemonized \(its first process exited 0 and left pids \[(\d+)\]\); "
    r"run it in the foreground \(e\.g\. redis-server --daemonize no\)$"
)


async def run_service(
    deps: EngineDeps, tmp_path: Path, argv: list[str], health: str
) -> tuple[RunResult, float]:
    """A scenario whose only service runs ``argv``; the result and how long the run took."""
    command, *args = argv
    process = json.dumps({"command": command, "args": args, "stop_grace": "1s"})
    text = textwrap.dedent(
        f"""
        version: 1
        name: startup
        services:
          orders:
            process: {process}
            health: {health}
            start_timeout: 10s
        steps:
          - wait: 1ms
        """
    )
    run_id = new_run_id()
    loaded = load_text(
        text,
        path=tmp_path / "startup.yaml",
        overrides={},
        environ={},
        allocate_port=placeholder_port,
        builtins={"python": sys.executable, "scenario_dir": str(tmp_path), "run_id": run_id},
    )
    started = time.monotonic()
    result = await run_scenario(
        loaded, deps, RunOptions(run_id=run_id, seed=1, reports_dir=tmp_path / "reports")
    )
    return result, time.monotonic() - started


def tcp_health() -> str:
    return f"{{tcp: {{port: {free_port()}}}}}"


async def test_a_later_exit_ends_the_health_wait_at_once_with_status_and_stderr(
    deps: EngineDeps, tmp_path: Path
) -> None:
    """The exit comes while a health probe is still in flight: setup does not wait it out."""
    argv = ["sh", "-c", "echo 'bad config line 3' >&2; sleep 0.3; exit 2"]
    slow_health = '{command: {argv: [sleep, "10"], timeout: 20s}}'

    result, took = await run_service(deps, tmp_path, argv, slow_health)

    assert result.outcome is Outcome.NOT_STARTED
    assert result.reason == (
        "setup: orders exited with status 2 before it was healthy; stderr: bad config line 3"
    )
    assert took < 2.0


async def test_an_exit_by_signal_is_named(deps: EngineDeps, tmp_path: Path) -> None:
    argv = ["sh", "-c", "sleep 0.1; kill -KILL $$"]

    result, took = await run_service(deps, tmp_path, argv, tcp_health())

    assert result.reason == "setup: orders was killed by SIGKILL before it was healthy"
    assert took < 2.0


@pytest.mark.parametrize(
    "shell",
    [
        pytest.param("setsid -f sleep 30", id="at-once"),
        pytest.param("sleep 0.2; setsid -f sleep 30", id="later"),
        pytest.param(f"exec {sys.executable} -c '{ENV_CLEARING_DAEMON}'", id="clears-its-env"),
    ],
)
async def test_a_daemonizing_command_is_explained_and_what_it_left_is_stopped(
    deps: EngineDeps, tmp_path: Path, shell: str
) -> None:
    result, took = await run_service(deps, tmp_path, ["sh", "-c", shell], tcp_health())

    assert result.outcome is Outcome.NOT_STARTED
    found = DAEMONIZED.match(result.reason)
    assert found is not None, result.reason
    assert not procfs.is_alive(int(found.group(1)))
    assert not marked_processes(result.run_id)
    assert took < 2.0


# Forks a daemon and exits 0 past start()'s own early-exit check; only once it is gone
# does the daemon start answering on the port.
ANSWERING_DAEMON = textwrap.dedent(
    """
    import os, socket, sys, time
    parent = os.getpid()
    ready, tell = os.pipe()
    if os.fork():
        os.read(ready, 1)
        time.sleep(0.1)
        sys.exit(0)
    os.setsid()
    os.write(tell, b".")
    while os.getppid() == parent:
        time.sleep(0.001)
    server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
    time.sleep(30)
    """
)


async def test_a_daemon_answering_the_health_probe_is_not_taken_for_the_service(
    deps: EngineDeps, tmp_path: Path
) -> None:
    port = free_port()
    argv = [sys.executable, "-c", ANSWERING_DAEMON, str(port)]

    result, took = await run_service(deps, tmp_path, argv, f"{{tcp: {{port: {port}}}}}")

    assert result.outcome is Outcome.NOT_STARTED
    found = DAEMONIZED.match(result.reason)
    assert found is not None, result.reason
    assert not procfs.is_alive(int(found.group(1)))
    assert took < 2.0

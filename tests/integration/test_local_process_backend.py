"""The local-process backend with real processes: tiny_server, shells, grandchildren."""

import os
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.runtime.probes import HttpProbe, ProbeResult
from test_coordinator.targets.port import RunScope, TargetSpec
from test_coordinator.targets.process import procfs
from test_coordinator.targets.process.backend import ProcessBackend
from test_coordinator.targets.process.marker import marked_processes
from test_coordinator.targets.process.supervisor import (
    BackendError,
    ProcessSpec,
    ProcessState,
    ProcessSupervisor,
)

pytestmark = pytest.mark.slow

TINY_SERVER = Path(__file__).resolve().parents[2] / "scenarios" / "examples" / "tiny_server.py"


def tiny(name: str, port: int, *, wrapper: str = "", grace_s: float = 5.0) -> ProcessSpec:
    """tiny_server as ``name``; with ``wrapper``, run by sh after that shell text."""
    server = f"{sys.executable} {TINY_SERVER} --port {port} --name {name}"
    if wrapper:
        return ProcessSpec(name, ("sh", "-c", f"{wrapper} exec {server}"), stop_grace_s=grace_s)
    return ProcessSpec(name, tuple(server.split()), stop_grace_s=grace_s)


def condition(predicate: Callable[[], object]) -> Callable[[], Awaitable[ProbeResult]]:
    """A check for wait_until from a plain predicate."""

    async def check() -> ProbeResult:
        value = predicate()
        return ProbeResult(bool(value), value, f"{predicate.__name__} -> {value!r}", 0.0)

    return check


async def eventually(predicate: Callable[[], object], deadline_s: float = 5.0) -> None:
    await wait_until(condition(predicate), deadline_s=deadline_s, interval_s=0.005)


def gone(pids: list[int]) -> bool:
    return not any(procfs.is_alive(pid) for pid in pids)


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[ProcessSupervisor]:
    runtime = ProcessSupervisor(tmp_path / "logs")
    try:
        yield runtime
    finally:
        await runtime.close(grace_s=1.0)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


def health(port: int, client: httpx.AsyncClient, timeout_s: float = 1.0) -> HttpProbe:
    return HttpProbe(
        f"http://127.0.0.1:{port}/health",
        json_fields={"status": "healthy"},
        timeout_s=timeout_s,
    )


async def test_started_service_runs_in_its_own_group_and_becomes_healthy(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    port = free_port()
    pid = await backend.start(tiny("orders", port))

    result, _ = await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    assert result.value == {"status": "healthy", "service": "orders"}
    assert backend.state("orders") == ProcessState.RUNNING
    assert backend.state("orders") == "running"
    assert backend.pid("orders") == pid
    stat = procfs.read_stat(pid)
    assert stat is not None
    assert (stat.pgrp, stat.session) == (pid, pid)
    out_log, err_log = backend.log_paths("orders")
    assert out_log.read_text() == f"tiny-server orders listening on {port}\n"
    assert err_log.exists()


async def test_pause_makes_probes_time_out_and_resume_recovers(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    port = free_port()
    pid = await backend.start(tiny("orders", port))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    await backend.pause("orders")
    paused = await health(port, client, timeout_s=0.2).check()
    stat = procfs.read_stat(pid)

    assert backend.state("orders") == "paused"
    assert stat is not None and stat.is_stopped
    assert not paused.ok
    assert "no answer within 0.2 s" in paused.detail

    await backend.resume("orders")
    resumed, _ = await wait_until(health(port, client).check, deadline_s=2.0, interval_s=0.005)

    assert resumed.ok
    assert backend.state("orders") == "running"


async def test_stop_ends_the_whole_group_including_grandchildren(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    """A shell that forked a long sleep before exec'ing the server: both are stopped."""
    port = free_port()
    pid = await backend.start(tiny("orders", port, wrapper="sleep 300 &"))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)
    await eventually(lambda: len(procfs.group_members(pid)) == 2)
    members = [m.pid for m in procfs.group_members(pid)]

    await backend.stop("orders")

    assert gone(members)
    assert procfs.group_members(pid) == []
    assert backend.state("orders") == "exited"
    assert backend.exit_code("orders") == 0  # tiny_server handled SIGTERM
    assert backend.pid("orders") is None


async def test_stop_kills_what_ignores_sigterm_after_the_grace(
    backend: ProcessSupervisor,
) -> None:
    spec = ProcessSpec("stubborn", ("sh", "-c", "trap '' TERM; sleep 300 & wait"), stop_grace_s=0.3)
    pid = await backend.start(spec)
    await eventually(lambda: len(procfs.group_members(pid)) == 2)
    members = [m.pid for m in procfs.group_members(pid)]

    started = time.monotonic()
    await backend.stop("stubborn")
    took = time.monotonic() - started

    assert gone(members)
    assert backend.exit_code("stubborn") == -signal.SIGKILL
    assert 0.3 <= took < 3.0


async def test_stop_with_a_chosen_first_signal(backend: ProcessSupervisor) -> None:
    """``stop`` with SIGINT: a shell that exits 7 on INT (and ignores TERM) exits 7."""
    spec = ProcessSpec(
        "ctrl-c",
        ("sh", "-c", "trap 'exit 7' INT; trap '' TERM; echo ready; while :; do sleep 0.05; done"),
        stop_grace_s=3.0,
    )
    await backend.start(spec)
    out = backend.log_paths("ctrl-c")[0]
    await eventually(lambda: "ready" in out.read_text())  # the traps are set

    await backend.stop("ctrl-c", first=signal.SIGINT)

    assert backend.exit_code("ctrl-c") == 7


async def test_stop_of_a_paused_service_lets_it_handle_sigterm(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    """SIGCONT goes with SIGTERM: the paused server exits cleanly within its grace."""
    port = free_port()
    await backend.start(tiny("orders", port, grace_s=3.0))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)
    await backend.pause("orders")

    await backend.stop("orders")

    assert backend.exit_code("orders") == 0
    out_log = backend.log_paths("orders")[0]
    assert out_log.read_text().endswith("tiny-server orders stopping\n")


async def test_stop_and_close_are_idempotent(backend: ProcessSupervisor) -> None:
    await backend.stop("never-started")
    pid = await backend.start(ProcessSpec("sleeper", ("sleep", "300")))

    await backend.stop("sleeper")
    await backend.stop("sleeper")
    await backend.close()
    await backend.close()

    assert not procfs.is_alive(pid)
    with pytest.raises(BackendError, match="sleeper: cannot start: the process backend is closed"):
        await backend.start(ProcessSpec("sleeper", ("sleep", "300")))


async def test_close_leaves_no_process_behind(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    """Running, paused, wrapped and orphaned processes: close() ends them all."""
    port = free_port()
    await backend.start(tiny("plain", port))
    await backend.start(tiny("wrapped", free_port(), wrapper="sleep 300 &"))
    await backend.start(ProcessSpec("paused", ("sleep", "300")))
    await backend.pause("paused")
    # A leader that dies alone leaves its child orphaned in the group:
    leader = await backend.start(ProcessSpec("orphaning", ("sh", "-c", "sleep 300 & wait")))
    await eventually(lambda: len(procfs.group_members(leader)) == 2)
    orphans = [m.pid for m in procfs.group_members(leader) if m.pid != leader]
    os.kill(leader, signal.SIGKILL)
    await eventually(lambda: backend.state("orphaning") == "exited")
    assert not gone(orphans)

    groups = [backend.pid(n) for n in ("plain", "wrapped", "paused")]
    members = [m.pid for g in groups if g is not None for m in procfs.group_members(g)]
    assert len(members) == 4

    started = time.monotonic()
    await backend.close(grace_s=2.0)

    assert gone(members + orphans)
    assert time.monotonic() - started < 4.0
    assert {backend.state(n) for n in backend.names()} == {"exited"}


async def test_kill_with_sigkill_leaves_it_exited(tmp_path: Path) -> None:
    exits: list[tuple[str, int]] = []
    backend = ProcessSupervisor(tmp_path, on_exit=lambda name, code: exits.append((name, code)))
    try:
        pid = await backend.start(ProcessSpec("victim", ("sleep", "300")))

        await backend.kill("victim")

        assert backend.state("victim") == "exited"
        assert backend.exit_code("victim") == -signal.SIGKILL
        assert not procfs.is_alive(pid)
        await eventually(lambda: exits == [("victim", -signal.SIGKILL)])
        assert backend.exit_requested("victim")
    finally:
        await backend.close()


async def test_kill_with_sigterm_returns_at_once_and_the_exit_follows(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    port = free_port()
    await backend.start(tiny("orders", port))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    await backend.kill("orders", signal.SIGTERM)
    await eventually(lambda: backend.state("orders") == "exited")

    assert backend.exit_code("orders") == 0
    with pytest.raises(BackendError, match=r"orders: cannot pause: not running \(exited"):
        await backend.pause("orders")


async def test_a_stopping_signal_that_stops_nothing_is_an_error_not_a_pause(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    """A service runs in its own session: the kernel discards SIGTSTP sent to it (its
    process group is orphaned), so the kill says so instead of counting a pause that never
    was. SIGSTOP stops it, and the kill returns once every member shows as stopped."""
    port = free_port()
    await backend.start(tiny("orders", port))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    with pytest.raises(BackendError, match=r"not stopped 1 s after SIGTSTP: a service runs"):
        await backend.kill("orders", signal.SIGTSTP)
    assert backend.state("orders") == "running"

    await backend.kill("orders", signal.SIGSTOP)
    assert backend.state("orders") == "paused"
    pid = backend.pid("orders")
    assert pid is not None
    stat = procfs.read_stat(pid)
    assert stat is not None and stat.is_stopped
    await backend.resume("orders")


async def test_a_crash_is_reported_and_told_apart(tmp_path: Path) -> None:
    """on_exit hears of a process that exits by itself; exit_requested says nobody asked."""
    exits: list[tuple[str, int]] = []
    backend = ProcessSupervisor(tmp_path, on_exit=lambda name, code: exits.append((name, code)))
    try:
        spec = ProcessSpec("later", ("sh", "-c", "echo old >&2; sleep 0.2; echo gone >&2; exit 9"))
        await backend.start(spec)
        await eventually(lambda: ("later", 9) in exits)
        await backend.start(spec)
        await eventually(lambda: exits.count(("later", 9)) == 2)

        assert backend.state("later") == "exited"
        assert not backend.exit_requested("later")
        assert backend.stderr_tail("later") == "old | gone"
        assert backend.log_paths("later")[1].read_text() == "old\ngone\n" * 2
    finally:
        await backend.close()


async def test_an_immediate_exit_fails_start_with_its_stderr(tmp_path: Path) -> None:
    """Within exit_check_s of starting, an exit is start()'s error, stderr quoted."""
    backend = ProcessSupervisor(tmp_path, exit_check_s=1.0)
    try:
        with pytest.raises(
            BackendError, match="failing: exited with status 3 right after start; stderr: bad flag"
        ):
            await backend.start(ProcessSpec("failing", ("sh", "-c", "echo bad flag >&2; exit 3")))
        assert backend.state("failing") == "exited"
    finally:
        await backend.close()


async def test_restart_starts_the_same_spec_again(
    backend: ProcessSupervisor, client: httpx.AsyncClient
) -> None:
    port = free_port()
    first = await backend.start(tiny("orders", port))
    await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    second = await backend.restart("orders")
    result, _ = await wait_until(health(port, client).check, deadline_s=5.0, interval_s=0.005)

    assert result.ok
    assert second != first
    assert not procfs.is_alive(first)
    lines = backend.log_paths("orders")[0].read_text().splitlines()
    listening = f"tiny-server orders listening on {port}"
    assert lines == [listening, "tiny-server orders stopping", listening]


async def test_environment_and_working_directory(
    backend: ProcessSupervisor, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    spec = ProcessSpec(
        "envy",
        ("sh", "-c", 'echo "$GREETING from $(pwd) home=$HOME"; echo oops >&2; exec sleep 300'),
        env={"GREETING": "hello"},
        cwd=workdir,
    )
    await backend.start(spec)
    out_log, err_log = backend.log_paths("envy")

    await eventually(lambda: out_log.read_text() and err_log.read_text())

    assert out_log.read_text() == f"hello from {workdir} home={Path.home()}\n"
    assert err_log.read_text() == "oops\n"


async def test_start_errors_name_the_service(backend: ProcessSupervisor, tmp_path: Path) -> None:
    with pytest.raises(
        BackendError, match=r"ghost: cannot start '/no/such/binary': .*No such file"
    ):
        await backend.start(ProcessSpec("ghost", ("/no/such/binary",)))
    with pytest.raises(
        BackendError, match=r"lost: cannot start: working directory .* does not exist"
    ) as missing_cwd:
        await backend.start(ProcessSpec("lost", ("sleep", "1"), cwd=tmp_path / "missing"))
    # a spawn failure, as a missing command is (exit code 3), not the service's failure
    assert isinstance(missing_cwd.value.__cause__, FileNotFoundError)
    await backend.start(ProcessSpec("once", ("sleep", "300")))
    with pytest.raises(BackendError, match=r"once: cannot start: already running as pid \d+"):
        await backend.start(ProcessSpec("once", ("sleep", "300")))
    with pytest.raises(BackendError, match="nobody: cannot restart: it was never started"):
        await backend.restart("nobody")
    with pytest.raises(
        BackendError, match="nobody: cannot send signal SIGKILL: it was never started"
    ):
        await backend.kill("nobody")


# -- what a service leaves behind: daemons, found even with their environment cleared ------

# Prints its pid, double-forks out of the session, then clears its environment the way
# redis-server and nginx do (they write their process title over it): the run marker is
# gone from /proc/PID/environ.
ENV_CLEARING_DAEMON = """
import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
print(os.getpid(), flush=True)
fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
start, end = int(fields[47]), int(fields[48])
with open("/proc/self/mem", "r+b") as memory:
    memory.seek(start)
    memory.write(bytes(end - start))
time.sleep(30)
"""


def process_backend(tmp_path: Path, run_id: str, **services: list[str]) -> ProcessBackend:
    specs = {
        name: TargetSpec(
            name,
            "process",
            {"command": argv[0], "args": argv[1:], "cwd": str(tmp_path), "stop_grace": "1s"},
        )
        for name, argv in services.items()
    }
    return ProcessBackend(specs, RunScope(run_id, tmp_path / "logs"))


async def daemon_pid(backend: ProcessBackend, name: str) -> int:
    out_log = backend.log_paths(name)[0]
    await eventually(lambda: out_log.exists() and out_log.read_text().strip())
    return int(out_log.read_text())


def environment_cleared(pid: int) -> bool:
    return not (procfs.PROC / str(pid) / "environ").read_bytes().strip(b"\0")


@pytest.mark.parametrize("how", ["remove", "close"])
async def test_remove_and_close_stop_a_daemon_that_cleared_its_environment(
    tmp_path: Path, how: str
) -> None:
    run_id = "20260101-000000-0000aa"
    daemonizing = [sys.executable, "-c", ENV_CLEARING_DAEMON]
    backend = process_backend(
        tmp_path, run_id, api=["sh", "-c", f"{shlex.join(daemonizing)}; exec sleep 30"]
    )
    try:
        await backend.start("api")
        pid = await daemon_pid(backend, "api")
        await eventually(lambda: environment_cleared(pid))
        # The environment no longer tells; the marker file it holds does.
        assert pid not in [stat.pid for stat in marked_processes(run_id, "api")]
        assert pid in [stat.pid for stat in backend.supervisor.holders("api")]

        if how == "remove":
            assert (await backend.remove("api")).endswith(f"it left behind: [{pid}]")
        else:
            await backend.close()

        assert not procfs.is_alive(pid)
    finally:
        await backend.close()


async def test_exit_problem_names_status_and_stderr_then_daemonizing(tmp_path: Path) -> None:
    """Both exit once the test creates ``go``, past start()'s own check for an early exit."""
    wait_for_go = "until [ -e go ]; do sleep 0.01; done"
    backend = process_backend(
        tmp_path,
        "20260101-000000-0000ab",
        crashing=["sh", "-c", f"{wait_for_go}; echo 'no config' >&2; exit 4"],
        forking=["sh", "-c", f"{wait_for_go}; setsid -f sleep 30"],
    )
    try:
        for name in ("crashing", "forking"):
            await backend.start(name)
            assert await backend.exit_problem(name) is None  # still running
        (tmp_path / "go").touch()
        await eventually(lambda: backend.state("crashing") == backend.state("forking") == "exited")

        crashed = await backend.exit_problem("crashing")
        daemonized = await backend.exit_problem("forking")

        assert crashed == "crashing exited with status 4 before it was healthy; stderr: no config"
        found = re.fullmatch(
            r"forking daemonized \(its first process exited 0 and left pids \[(\d+)\]\); "
            r"run it in the foreground \(e\.g\. redis-server --daemonize no\)",
            daemonized or "",
        )
        assert found is not None, daemonized
        assert not procfs.is_alive(int(found.group(1)))
        assert await backend.exit_problem("forking") == daemonized  # asked again: the same
    finally:
        await backend.close()

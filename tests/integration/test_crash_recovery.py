"""Recovery after a crash, against real processes: done only once the target is seen restored.

Each test leaves in the store what a coordinator killed at a bad moment leaves
(a run still ``running`` whose coordinator is gone, pending undo records) and
real processes in the state it left them, then runs the recovery that the
guard, ``recover``, the next ``run`` and ``serve`` all use.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from test_coordinator.adapters.storage.engines import sqlite_engine
from test_coordinator.adapters.storage.sql_store import SqlRunStore
from test_coordinator.engine.ports import EngineDeps
from test_coordinator.engine.recovery import recover_runs
from test_coordinator.engine.undo_actions import UndoAction, UndoKind
from test_coordinator.engine.wiring import runtime_deps
from test_coordinator.ports.storage import RunRecord, RunStatus, UndoRecord, UndoStatus
from test_coordinator.runtime.ports_alloc import free_port
from test_coordinator.targets.port import TargetSpec
from test_coordinator.targets.process import procfs
from test_coordinator.targets.process.marker import marked_processes, marker_env

pytestmark = pytest.mark.slow

RUN = "20260101-000000-dead00"

# A service that binds its port (or dies at once with "address already in use"),
# and takes ``--slow-exit`` seconds to exit on SIGTERM.
SERVER = textwrap.dedent(
    """
    import http.server, signal, sys, threading, time
    port, slow = int(sys.argv[1]), float(sys.argv[2])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *a): pass
    server = http.server.HTTPServer(("127.0.0.1", port), H)
    def term(*_):
        time.sleep(slow); sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    server.serve_forever()
    """
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    engine = sqlite_engine(tmp_path / "coordinator.db")
    sql = SqlRunStore(engine, name="sqlite")
    await sql.migrate()
    yield sql
    await engine.dispose()


@pytest.fixture
async def deps(store: SqlRunStore) -> AsyncIterator[EngineDeps]:
    async with runtime_deps(store, poll_interval_s=0.01, guard=False) as real:
        yield real


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        if process.stderr is not None:
            process.stderr.close()


def dead_coordinator() -> dict[str, object]:
    """The identity of a coordinator process that has exited."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return {"host": os.uname().nodename, "pid": gone.pid, "start_ticks": 1}


def server_config(tmp_path: Path, port: int, slow_exit_s: float = 0.0) -> dict[str, object]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    return {
        "command": sys.executable,
        "args": [str(script), str(port), str(slow_exit_s)],
        "env": {},
        "cwd": None,
        "stop_grace": "3s",
    }


def start_marked(
    spawned: list[subprocess.Popen[bytes]], config: dict[str, object], service: str
) -> subprocess.Popen[bytes]:
    """The service as the killed run left it: its own process group, the run's marker."""
    process = subprocess.Popen(
        [str(config["command"]), *map(str, config["args"])],  # type: ignore[call-overload]
        env={**os.environ, **marker_env(RUN, service)},
        start_new_session=True,
        stderr=subprocess.PIPE,
    )
    spawned.append(process)
    return process


def start_unmarked(
    spawned: list[subprocess.Popen[bytes]], argv: list[str]
) -> subprocess.Popen[bytes]:
    """A process that has nothing to do with the run."""
    process = subprocess.Popen(argv, start_new_session=True)
    spawned.append(process)
    return process


async def left_behind(store: SqlRunStore, tmp_path: Path, *actions: UndoAction) -> list[UndoRecord]:
    await store.save_run(
        RunRecord(
            RUN,
            "crashed",
            RunStatus.RUNNING,
            1,
            summary={"coordinator": dead_coordinator(), "run_dir": str(tmp_path / "run")},
        )
    )
    records = []
    for index, action in enumerate(actions, start=1):
        record = UndoRecord(
            f"{RUN}-u{index}", RUN, action.service, action.to_json(), created_at_ms=index
        )
        await store.record_undo(record)
        records.append(record)
    return records


def action(kind: UndoKind, config: dict[str, object], port: int, **handle: object) -> UndoAction:
    return UndoAction(
        kind,
        "orders",
        TargetSpec("orders", "process", config),
        handle=handle,
        health={"http": {"url": f"http://127.0.0.1:{port}/", "timeout": "1s"}},
        start_timeout_s=2.0,
        log_dir=str(Path(str(config["args"][0])).parent / "logs"),  # type: ignore[index]
    )


async def wait_until_listening(port: int) -> None:
    import asyncio

    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            return


async def test_killed_mid_restart_the_new_process_lost_the_port(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """Killed 25-45 ms into a restart: the old process still holds the port and the new one
    dies on it. Recovery does not report "started again"; it removes what the run started
    and verifies that nothing of it is left."""
    port = free_port()
    config = server_config(tmp_path, port, slow_exit_s=0.3)
    old = start_marked(spawned, config, "orders")
    await wait_until_listening(port)
    new = start_marked(spawned, config, "orders")
    assert new.wait(10) != 0 and b"Address already in use" in new.stderr.read()  # type: ignore[union-attr]
    await left_behind(
        store,
        tmp_path,
        action(UndoKind.REMOVE, config, port),
        action(UndoKind.START, config, port),
    )

    report = await recover_runs(store, deps)

    assert report.all_undone, report
    start, remove = report.undos
    assert ("start", "done") == (start.action, start.status.value)
    assert "superseded" in start.detail
    assert ("remove", "done") == (remove.action, remove.status.value)
    assert [] == marked_processes(RUN)
    assert old.poll() is not None
    assert RunStatus.ABORTED == (await store.get_run(RUN)).status  # type: ignore[union-attr]
    assert [] == await store.pending_undos()


async def test_a_slow_exit_is_waited_for_not_reported_early(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """A service that takes 1.5 s to exit on SIGTERM: recovery is done only once it is gone."""
    port = free_port()
    config = server_config(tmp_path, port, slow_exit_s=1.5)
    process = start_marked(spawned, config, "orders")
    await wait_until_listening(port)
    await left_behind(store, tmp_path, action(UndoKind.REMOVE, config, port))

    report = await recover_runs(store, deps)

    [remove] = report.undos
    assert UndoStatus.DONE == remove.status
    assert process.poll() is not None, "reported done while the process still ran"
    assert [] == marked_processes(RUN)


async def test_a_stopped_process_is_resumed_and_seen_running(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """A SIGSTOPped service: its resume is verified by /proc (no member stopped)."""
    port = free_port()
    config = server_config(tmp_path, port)
    process = start_marked(spawned, config, "orders")
    await wait_until_listening(port)
    os.killpg(process.pid, signal.SIGSTOP)
    stat = procfs.read_stat(process.pid)
    assert stat is not None
    await left_behind(
        store,
        tmp_path,
        action(UndoKind.RESUME, config, port, pid=process.pid, start_ticks=stat.start_ticks),
    )

    report = await recover_runs(store, deps)

    [resume] = report.undos
    assert UndoStatus.DONE == resume.status, resume.detail
    now = procfs.read_stat(process.pid)
    assert now is not None and not now.is_stopped


async def test_a_reused_pid_is_never_signalled(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """The record names pid N with another start time: that process is left alone."""
    bystander = start_unmarked(spawned, ["sleep", "30"])
    os.killpg(bystander.pid, signal.SIGSTOP)
    port = free_port()
    await left_behind(
        store,
        tmp_path,
        action(
            UndoKind.RESUME, server_config(tmp_path, port), port, pid=bystander.pid, start_ticks=1
        ),
    )

    report = await recover_runs(store, deps)

    [resume] = report.undos
    assert "nothing to resume" in resume.detail
    stat = procfs.read_stat(bystander.pid)
    assert stat is not None and stat.is_stopped, "a process that only reused the pid was resumed"
    os.killpg(bystander.pid, signal.SIGCONT)


async def test_a_start_that_is_not_seen_healthy_fails_with_the_reason(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path
) -> None:
    """Started again but never healthy: ``failed`` with what was seen, not ``done``."""
    port = free_port()
    config = {
        "command": sys.executable,
        "args": ["-c", "import time; time.sleep(30)"],
        "env": {},
        "cwd": None,
        "stop_grace": "1s",
    }
    await left_behind(store, tmp_path, action(UndoKind.START, config, port))

    report = await recover_runs(store, deps)

    [start] = report.undos
    assert UndoStatus.FAILED == start.status
    assert "orders not healthy within 2s" in start.detail
    assert not report.all_undone
    assert [] == marked_processes(RUN), "the process started for the undo outlived recovery"


async def test_a_live_coordinator_is_left_alone(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path
) -> None:
    port = free_port()
    await store.save_run(
        RunRecord(
            RUN,
            "live",
            RunStatus.RUNNING,
            1,
            summary={"coordinator": {"host": os.uname().nodename, "pid": os.getpid()}},
        )
    )
    await store.record_undo(
        UndoRecord(
            f"{RUN}-u1",
            RUN,
            "orders",
            action(UndoKind.REMOVE, server_config(tmp_path, port), port).to_json(),
        )
    )

    report = await recover_runs(store, deps)

    assert () == report.undos
    assert [f"run {RUN}: its coordinator (pid {os.getpid()}) still runs"] == list(report.skipped)


async def test_a_start_that_exits_is_failed_at_once_with_its_status(
    store: SqlRunStore, deps: EngineDeps, tmp_path: Path
) -> None:
    """Started again, it exits after 0.3 s: ``failed`` with its status, not after 30 s."""
    import time

    port = free_port()
    config = {
        "command": sys.executable,
        "args": [
            "-c",
            "import sys, time; time.sleep(0.3); print('no db', file=sys.stderr); sys.exit(3)",
        ],
        "env": {},
        "cwd": None,
        "stop_grace": "1s",
    }
    undo = action(UndoKind.START, config, port)
    await left_behind(store, tmp_path, dataclasses.replace(undo, start_timeout_s=30.0))
    started = time.monotonic()

    report = await recover_runs(store, deps)

    [start] = report.undos
    assert UndoStatus.FAILED == start.status
    assert "exited with status 3" in start.detail and "no db" in start.detail, start.detail
    assert time.monotonic() - started < 10.0

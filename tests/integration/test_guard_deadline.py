"""The guard process past its run's lifetime, with a stand-in coordinator: a ``sleep``
that holds the write end of the guard's stdin, as the coordinator does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.polling import eventually
from test_coordinator.targets.process import procfs

pytestmark = pytest.mark.slow


class Pair:
    def __init__(self, coordinator: subprocess.Popen[bytes], guard: subprocess.Popen[bytes]):
        self.coordinator = coordinator
        self.guard = guard


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A stand-in coordinator and its guard, whose lifetime is 0.3 s."""
    reader, writer = os.pipe()
    coordinator = subprocess.Popen(["sleep", "300"], pass_fds=(writer,))
    os.close(writer)  # the stand-in holds the only write end now
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    with open(tmp_path / "guard.log", "wb") as log:
        guard = subprocess.Popen(
            [sys.executable, "-m", "test_coordinator.guard", "run-x", "0.3", str(coordinator.pid)],
            stdin=reader,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    os.close(reader)
    yield Pair(coordinator, guard)
    for process in (coordinator, guard):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)


def stopped(pid: int) -> bool:
    stat = procfs.read_stat(pid)
    return stat is not None and stat.is_stopped


def log_of(tmp_path: Path) -> str:
    return (tmp_path / "guard.log").read_text()


async def test_a_coordinator_stopped_past_its_lifetime_is_killed_and_its_run_undone(
    pair: Pair, tmp_path: Path
) -> None:
    os.kill(pair.coordinator.pid, signal.SIGSTOP)
    await eventually(lambda: stopped(pair.coordinator.pid), what="the coordinator stopped")

    assert -signal.SIGKILL == pair.coordinator.wait(timeout=10)
    assert 0 == pair.guard.wait(timeout=30), log_of(tmp_path)
    log = log_of(tmp_path)
    assert "is stopped: killing it to undo the run" in log
    assert "the coordinator of run run-x died; undoing the run" in log


async def test_a_coordinator_running_past_its_lifetime_is_left_to_finish(
    pair: Pair, tmp_path: Path
) -> None:
    await eventually(lambda: "still runs, so it is left to finish" in log_of(tmp_path))

    assert pair.coordinator.poll() is None
    assert pair.guard.poll() is None

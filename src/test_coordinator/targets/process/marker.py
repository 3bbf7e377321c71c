"""The run marker: every process a run starts carries the run id in its environment.

A process forked by a service, or one that left the service's process group
(``setsid``, a daemon that double-forks), still inherits the environment, so
after a crash whoever undoes the run finds everything the run started by
reading ``/proc/PID/environ``: no pid file, no parent that must still be alive.
Docker containers carry the same two values as labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from test_coordinator.targets.process import procfs

RUN_ID_ENV = "TEST_COORDINATOR_RUN_ID"
SERVICE_ENV = "TEST_COORDINATOR_SERVICE"
_POLL_S = 0.01


def marker_env(run_id: str, service: str) -> dict[str, str]:
    return {RUN_ID_ENV: run_id, SERVICE_ENV: service}


def marked_processes(run_id: str, service: str | None = None) -> list[procfs.ProcStat]:
    """Every live (non-zombie) process carrying the run's marker (and the service's, if given)."""
    wanted = {f"{RUN_ID_ENV}={run_id}".encode()}
    if service is not None:
        wanted.add(f"{SERVICE_ENV}={service}".encode())
    found = []
    try:
        entries = os.listdir(procfs.PROC)
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = (procfs.PROC / entry / "environ").read_bytes()
        except OSError:
            continue
        if not wanted.issubset(environ.split(b"\0")):
            continue
        stat = procfs.read_stat(int(entry))
        if stat is not None and not stat.is_zombie:
            found.append(stat)
    return found


async def terminate_marked(
    run_id: str, service: str | None, grace_s: float, kill_wait_s: float = 5.0
) -> list[int]:
    """SIGTERM (and SIGCONT) every marked process, SIGKILL what is left after ``grace_s``;
    returns the pids that were found. Raises ProcessLookupError-free; a pid whose start
    time changed meanwhile (reused) is never signalled."""
    found = marked_processes(run_id, service)
    await terminate(found, grace_s, kill_wait_s)
    return [stat.pid for stat in found]


async def terminate(found: list[procfs.ProcStat], grace_s: float, kill_wait_s: float = 5.0) -> None:
    """SIGTERM (and SIGCONT) each process that is still the one found, SIGKILL what is
    left after ``grace_s``; raises TimeoutError naming what outlives ``kill_wait_s``."""
    if not found:
        return
    for stat in found:
        _signal(stat, signal.SIGTERM)
        _signal(stat, signal.SIGCONT)
    if await _all_gone(found, grace_s):
        return
    for stat in found:
        _signal(stat, signal.SIGKILL)
    if not await _all_gone(found, kill_wait_s):
        left = [s.pid for s in found if _same_alive(s)]
        raise TimeoutError(f"pids {left} still not gone {kill_wait_s:g} s after SIGKILL")


def _same_alive(stat: procfs.ProcStat) -> bool:
    now = procfs.read_stat(stat.pid)
    return now is not None and not now.is_zombie and now.start_ticks == stat.start_ticks


def _signal(stat: procfs.ProcStat, signum: int) -> None:
    if not _same_alive(stat):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(stat.pid, signum)


async def _all_gone(found: list[procfs.ProcStat], timeout_s: float) -> bool:
    deadline = time.monotonic() + max(timeout_s, 0.0)
    while any(_same_alive(stat) for stat in found):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True

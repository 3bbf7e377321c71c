"""Finding and cleaning up the tiny_server processes an end-to-end test started."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from test_coordinator.targets.process import procfs


def pids_with_arg(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker`` as one argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and procfs.is_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def state(pid: int) -> str | None:
    stat = procfs.read_stat(pid)
    return None if stat is None else stat.state


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGCONT)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

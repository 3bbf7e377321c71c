"""What /proc says about a process: its state, parent, group and start time.

Whether a process is gone is decided here and nowhere else: a process that has
exited but was not yet reaped (state ``Z``) is gone, even though ``kill -0``
still succeeds on it. Orphans on this kind of machine are reaped late, so
``kill -0`` would report them alive for a long time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` that the runtime needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X", "x")

    @property
    def is_stopped(self) -> bool:
        return self.state in ("T", "t")


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None if no such process exists (any longer)."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except OSError:
        return None
    return _parse_stat(raw)


def _parse_stat(raw: bytes) -> ProcStat | None:
    # "pid (comm) state ppid pgrp session tty_nr tpgid flags ... starttime(22) ..."
    # comm may hold spaces and parentheses: split after the last ')'.
    close = raw.rfind(b")")
    if close < 0:
        return None
    head = raw[: raw.find(b" (")]
    fields = raw[close + 2 :].split()
    try:
        return ProcStat(
            pid=int(head),
            state=fields[0].decode("ascii"),
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            session=int(fields[3]),
            start_ticks=int(fields[19]),
        )
    except (IndexError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    stat = read_stat(pid)
    return stat is not None and not stat.is_zombie


def group_members(pgid: int) -> list[ProcStat]:
    """Every live (non-zombie) process whose process group is ``pgid``."""
    members = []
    try:
        entries = os.listdir(PROC)
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is not None and stat.pgrp == pgid and not stat.is_zombie:
            members.append(stat)
    return members

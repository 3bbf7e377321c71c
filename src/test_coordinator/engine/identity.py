"""Who runs a run: the coordinator process, so that a later one can tell if it died."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from test_coordinator.targets.process import procfs


def coordinator_identity(pid: int | None = None) -> dict[str, Any]:
    """This process (or ``pid``): host, pid and start time (so a reused pid is not mistaken
    for it); :func:`coordinator_alive` tells later whether it still runs."""
    pid = os.getpid() if pid is None else pid
    stat = procfs.read_stat(pid)
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "start_ticks": stat.start_ticks if stat is not None else None,
    }


def coordinator_alive(identity: Mapping[str, Any] | None) -> bool | None:
    """True if that coordinator still runs, False if it is gone, None if it cannot be told
    (another host, or no identity recorded)."""
    if not identity or identity.get("host") != socket.gethostname():
        return None
    pid = identity.get("pid")
    if not isinstance(pid, int):
        return None
    stat = procfs.read_stat(pid)
    if stat is None or stat.is_zombie:
        return False
    ticks = identity.get("start_ticks")
    return ticks is None or stat.start_ticks == ticks

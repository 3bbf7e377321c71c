"""One process at a time recovers a run: an exclusive lock per run id on this host.

The guard, ``recover`` and the start of ``run`` and ``serve`` may all find the same
run left behind at the same moment; each would undo it and write its reports, the
last one's replacing the others'. Recovery only ever acts on runs of this host, so
a lock file per run under the system's temporary directory is enough: ``flock``
is released by the kernel when its holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FOLDER = "tc-recovery"


def claim_path(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / FOLDER / f"{run_id}.lock"


@contextlib.contextmanager
def claim_run(run_id: str) -> Iterator[bool]:
    """Hold the run's recovery claim for the block: True, or False at once when another
    process holds it (the block then must leave the run alone)."""
    path = claim_path(run_id)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            # Removed while held: a later claimer makes a new file. One that opened this
            # file before and locks it after finds the run recovered (the caller looks
            # again once it holds the claim).
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)

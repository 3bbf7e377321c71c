"""Start a run's guard and, when the run ends normally, stand it down."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_coordinator.engine.identity import coordinator_identity

DONE = b"done\n"
LOG_FILE = "guard.log"


class ProcessGuard:
    """One run's guard process. :meth:`arm` starts it; :meth:`disarm` stands it down."""

    def __init__(self, run_id: str, run_dir: Path) -> None:
        self._run_id = run_id
        self._run_dir = run_dir
        self._writer: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def arm(self, lifetime_s: float) -> dict[str, Any]:
        """Start the guard; its identity (host, pid, start time) for the run record.
        Past ``lifetime_s`` it kills this process if it finds it stopped (see the guard)."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        reader, writer = os.pipe()  # both ends non-inheritable: no service gets a copy
        try:
            with (self._run_dir / LOG_FILE).open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "test_coordinator.guard",
                        self._run_id,
                        f"{lifetime_s:.3f}",
                        str(os.getpid()),
                    ],
                    stdin=reader,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    close_fds=True,
                )
        except BaseException:
            os.close(writer)
            raise
        finally:
            os.close(reader)
        self._writer = writer
        return coordinator_identity(self._process.pid)

    def disarm(self) -> None:
        """Tell the guard the run ended cleanly; it exits as soon as it reads that.

        Not waited for: a guard still starting up (a short run) would make the run
        wait for a Python start. It is reaped when it exits (the subprocess module
        reaps finished children on the next start; after our exit, init does).
        """
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        with contextlib.suppress(OSError):
            os.write(writer, DONE)
        os.close(writer)
        if self._process is not None:
            self._process.poll()

"""How a run is identified and stopped: its id, seed, report folder, and interruption."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from test_coordinator.ports.storage import RunStatus

DEFAULT_UNDO_TIMEOUT_S = 120.0


def new_run_id() -> str:
    """Sortable and readable: ``20250101-120000-1a2b3c``."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def new_seed() -> int:
    return secrets.randbelow(2**31)


@dataclass(frozen=True, slots=True)
class RunOptions:
    run_id: str
    seed: int
    reports_dir: Path = Path("reports")
    undo_timeout_s: float = DEFAULT_UNDO_TIMEOUT_S
    flush_interval_s: float = 1.0
    audit_url: str | None = None
    """Replaces the scenario's ``audit.url`` (the scenario must still have ``audit:``)."""

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id


class RunControl:
    """Stops a run cleanly from a signal handler: the run undoes its faults and returns
    a result with outcome ``interrupted``.

    The run attaches its task once its guard is armed and its record stored: an
    interruption asked for before that takes effect at the attach, so a run is never
    stopped between arming its guard and the ``finally`` that disarms it.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self.reason: str | None = None
        self.status: RunStatus | None = None
        """The status to store for the interrupted run (default: the engine's, aborted)."""
        self.abandoned = False
        """The caller gave up waiting (a service stopping): the run's guard finishes it."""
        self.ending = False
        """The run is undoing at its end: its verdict is made, an interruption is too late."""

    @property
    def interrupted(self) -> bool:
        return self.reason is not None

    def attach(self, task: asyncio.Task[Any] | None) -> None:
        self._task = task
        if task is not None and self.reason is not None:
            task.cancel()

    def end(self) -> None:
        """The run has reached its undo: from here an interruption changes nothing."""
        self.ending = True

    def interrupt(self, reason: str, status: RunStatus | None = None) -> bool:
        """Ask the run to stop, stored as ``status`` once undone; False if it was already
        asked, or it is undoing at its end anyway (its cleanup is never cut short)."""
        if self.reason is not None or self.ending:
            return False
        self.reason = reason
        self.status = status
        if self._task is not None:
            self._task.cancel()
        return True

    def abandon(self) -> None:
        """The caller exits before the run's undo ends: the run must not tell its guard it
        ended, so that the guard undoes what is left and writes the reports."""
        self.abandoned = True

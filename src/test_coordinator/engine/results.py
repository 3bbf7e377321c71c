"""What a run produced: its outcome, each step's and check's result, recoveries and undos."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from test_coordinator.ports.storage import JournalEvent, RunStatus


class Outcome(StrEnum):
    """How a run ended; decides the stored status and the CLI's exit code."""

    PASSED = "passed"
    FAILED = "failed"
    """A step or a check failed, or an ``always`` condition broke."""
    DEVIATED = "deviated"
    """The steady state did not hold after the last step."""
    NOT_STARTED = "not-started"
    """The services did not come up healthy or the steady state did not hold: no fault ran."""
    TIMED_OUT = "timed-out"
    """The run's own ``timeout`` ran out."""
    ERROR = "error"
    """Infrastructure: a process could not be spawned, storage refused a write, a bug."""
    INTERRUPTED = "interrupted"
    """Ctrl-C or SIGTERM; everything was undone."""
    ABORTED = "aborted"
    """The coordinator died during the run; its guard or a later recovery undid it."""

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]

    @property
    def run_status(self) -> RunStatus:
        return _RUN_STATUS[self]


_EXIT_CODES = {
    Outcome.PASSED: 0,
    Outcome.FAILED: 1,
    Outcome.DEVIATED: 1,
    Outcome.NOT_STARTED: 1,
    Outcome.TIMED_OUT: 1,
    Outcome.ERROR: 3,
    Outcome.INTERRUPTED: 130,
    Outcome.ABORTED: 3,
}
_RUN_STATUS = {
    Outcome.PASSED: RunStatus.PASSED,
    Outcome.FAILED: RunStatus.FAILED,
    Outcome.DEVIATED: RunStatus.FAILED,
    Outcome.NOT_STARTED: RunStatus.ERROR,
    Outcome.TIMED_OUT: RunStatus.FAILED,
    Outcome.ERROR: RunStatus.ERROR,
    Outcome.INTERRUPTED: RunStatus.ABORTED,
    Outcome.ABORTED: RunStatus.ABORTED,
}


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step (or steady-state check) as it ran; times in ms from the run's start."""

    step_id: str
    name: str
    kind: str
    status: Status
    started_at_ms: float | None = None
    ended_at_ms: float | None = None
    detail: str = ""
    targets: tuple[str, ...] = ()
    value: Any = None

    @property
    def duration_ms(self) -> float:
        if self.started_at_ms is None or self.ended_at_ms is None:
            return 0.0
        return self.ended_at_ms - self.started_at_ms


@dataclass(frozen=True, slots=True)
class CheckResult:
    index: int
    name: str
    kind: str
    status: Status
    detail: str = ""
    value: Any = None


RESTORED_BY_UNDO = "the undo at the end of the run"
"""``Recovery.restored_by`` of a fault no step restored: the undo did, after the checks."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """One fault: injected at, first healthy probe after it at (None: never recovered), and
    when what restores it (a ``resume`` or ``start``, a step or the undo) was performed."""

    service: str
    step_id: str
    step_name: str
    fault: str
    injected_at_ms: float
    recovered_at_ms: float | None = None
    detail: str = ""
    restore: str = ""
    """What restores the fault: ``resume`` (a pause), ``start`` (a stop, a kill), or
    ``""`` when the fault restores the service itself (a restart)."""
    restored_at_ms: float | None = None
    """When the restore was performed (the moment the resume or start call was made)."""
    restored_by: str = ""
    """Who restored it: ``step 3 (resume prices)``, or ``the undo at the end of the run``."""

    @property
    def recovery_ms(self) -> float | None:
        """From the injection to the first healthy probe."""
        if self.recovered_at_ms is None:
            return None
        return round(self.recovered_at_ms - self.injected_at_ms, 3)

    @property
    def recovery_from_restore_ms(self) -> float | None:
        """From the restore to the first healthy probe: the service's own recovery, without
        the time the fault was left in place (a pause's length, a stop's)."""
        if self.recovered_at_ms is None or self.restored_at_ms is None:
            return None
        return round(self.recovered_at_ms - self.restored_at_ms, 3)


@dataclass(frozen=True, slots=True)
class UndoResult:
    undo_id: str
    service: str
    action: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    scenario: str
    file: Path
    outcome: Outcome
    reason: str
    seed: int
    started_at_epoch_ms: int
    duration_ms: float
    run_dir: Path
    clock_origin_s: float = 0.0
    """The monotonic clock's reading at the run's 0 ms (to line up outside measurements)."""
    setup: StepResult | None = None
    steps: tuple[StepResult, ...] = ()
    steady_state: tuple[StepResult, ...] = ()
    checks: tuple[CheckResult, ...] = ()
    recoveries: tuple[Recovery, ...] = ()
    undos: tuple[UndoResult, ...] = ()
    events: tuple[JournalEvent, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    status: RunStatus | None = None
    """The stored status when its caller chose it (a cancelled run); else the outcome's."""

    @property
    def run_status(self) -> RunStatus:
        return self.status or self.outcome.run_status

    @property
    def exit_code(self) -> int:
        return self.outcome.exit_code

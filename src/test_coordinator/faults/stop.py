"""stop: ``signal`` (SIGTERM, or the engine's stop), ``grace`` (default: the service's),
then kill.

Undo: ``start`` (verified healthy), superseded when the run removes the service
anyway. Recovery is measured from the stop to the first healthy probe of a new
incarnation, once something starts it again.
"""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Duration, SignalName, Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class StopStep(StepBase):
    """``signal`` (default SIGTERM), ``grace`` (default: the service's ``stop_grace``),
    then SIGKILL: ``stop: api`` + ``signal: SIGINT`` tests a shutdown on Ctrl-C."""

    stop: Targets
    grace: Duration | None = None
    signal: SignalName | None = None


def describe(step: StopStep, names: str) -> str:
    return f"stop {names}" + (f" with {step.signal}" if step.signal else "")


async def inject(ctx: RunContext, step_id: str, step: StopStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import inject_fault, on_each, require_state

    signum = signals.Signals[step.signal] if step.signal else None

    async def stop(service: str) -> None:
        require_state(ctx, service, ("running", "paused"), "stop")
        await inject_fault(
            ctx,
            step_id,
            service,
            undo=UndoKind.START,
            fault="stop",
            act=lambda: ctx.targets.stop(service, step.grace, signum),
            new_process=True,
        )

    await on_each(targets, stop)


ACTION = TargetAction(
    key="stop",
    model=StopStep,
    inject=inject,
    describe=describe,
    default_timeout_s=30.0,
    is_fault=True,
    undo="start",
)

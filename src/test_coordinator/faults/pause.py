"""pause: freeze the service (SIGSTOP to its process group, or the engine's pause).

Undo: ``resume`` of exactly that incarnation (pid and start time, container
id), done once no part of it is seen frozen. Recovery is measured from the
pause to the first healthy probe after it is resumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class PauseStep(StepBase):
    """Freeze the service; a later ``resume`` (or the undo) continues it."""

    pause: Targets


def describe(step: PauseStep, names: str) -> str:
    return f"pause {names}"


async def inject(ctx: RunContext, step_id: str, step: PauseStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import inject_fault, on_each, require_state

    async def pause(service: str) -> None:
        require_state(ctx, service, ("running",), "pause")
        await inject_fault(
            ctx,
            step_id,
            service,
            undo=UndoKind.RESUME,
            fault="pause",
            act=lambda: ctx.targets.pause(service),
            new_process=False,
        )

    await on_each(targets, pause)


ACTION = TargetAction(
    key="pause",
    model=PauseStep,
    inject=inject,
    describe=describe,
    default_timeout_s=10.0,
    is_fault=True,
    undo="resume",
)

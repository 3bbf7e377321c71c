"""resume: continue a paused service. Not a fault: it settles the pending ``resume`` undo, and
the pause's recovery is also measured from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class ResumeStep(StepBase):
    """Continue a paused service (harmless on one that runs)."""

    resume: Targets


def describe(step: ResumeStep, names: str) -> str:
    return f"resume {names}"


async def inject(ctx: RunContext, step_id: str, step: ResumeStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import note_restore, on_each, require_state

    async def resume(service: str) -> None:
        require_state(ctx, service, ("paused", "running"), "resume")
        if ctx.targets.state(service) == "paused":
            note_restore(ctx, service, UndoKind.RESUME, step_id)
        await ctx.targets.resume(service)
        await ctx.ledger.settle(service, UndoKind.RESUME, f"resumed by step {step_id}")

    await on_each(targets, resume)


ACTION = TargetAction(
    key="resume",
    model=ResumeStep,
    inject=inject,
    describe=describe,
    default_timeout_s=10.0,
    is_fault=False,
    undo="none (settles a pending resume)",
)

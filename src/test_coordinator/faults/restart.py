"""restart: stop then start; recovery is measured from the stop to the first healthy probe
of the new incarnation.

Undo: ``start``, settled as soon as the restart completes (it also settles a
pending ``resume`` of the service: the paused incarnation is gone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class RestartStep(StepBase):
    """Stop then start; recovery is measured from the stop to the first healthy probe."""

    restart: Targets


def describe(step: RestartStep, names: str) -> str:
    return f"restart {names}"


async def inject(
    ctx: RunContext, step_id: str, step: RestartStep, targets: tuple[str, ...]
) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import (
        inject_fault,
        on_each,
        record_started,
        require_state,
    )

    async def restart(service: str) -> None:
        require_state(ctx, service, ("running", "paused"), "restart")
        identities: list[str] = []

        async def act() -> None:
            identities.append(await ctx.targets.restart(service))

        entry = await inject_fault(
            ctx,
            step_id,
            service,
            undo=UndoKind.START,
            fault="restart",
            act=act,
            new_process=True,
            restores_itself=True,
        )
        record_started(ctx, service, identities[0], step_id)
        await ctx.ledger.settle_entry(entry, f"restarted by step {step_id}")
        await ctx.ledger.settle(service, UndoKind.RESUME, f"restarted by step {step_id}")

    await on_each(targets, restart)


ACTION = TargetAction(
    key="restart",
    model=RestartStep,
    inject=inject,
    describe=describe,
    default_timeout_s=60.0,
    is_fault=True,
    undo="start",
)

"""heal: clear the network faults the run set on proxy services. Not a fault: it settles
their pending ``heal`` undos, and journals what each fault did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class HealStep(StepBase):
    """Clear every network fault on the proxy services named (harmless on one without)."""

    heal: Targets


def describe(step: HealStep, names: str) -> str:
    return f"heal {names}"


async def inject(ctx: RunContext, step_id: str, step: HealStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.faults.acting import on_each
    from test_coordinator.faults.network_acting import heal_service

    async def heal(service: str) -> None:
        await heal_service(ctx, step_id, service)

    await on_each(targets, heal)


ACTION = TargetAction(
    key="heal",
    model=HealStep,
    inject=inject,
    describe=describe,
    default_timeout_s=10.0,
    is_fault=False,
    undo="none (settles pending heals)",
)

"""start: start the services that are not running (running ones are left as they are).

Not a fault: it reverts a ``stop`` or a terminating ``kill`` itself, which settles
their undo, and their recovery is also measured from it. The first start of a service
the run creates records its removal first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext


class StartStep(StepBase):
    """Start the services that are not running (running ones are left as they are).

    Returns once they run; follow with ``expect`` to wait for health.
    """

    start: Targets


def describe(step: StartStep, names: str) -> str:
    return f"start {names}"


async def inject(ctx: RunContext, step_id: str, step: StartStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import (
        note_restore,
        on_each,
        record_started,
        require_state,
        start_service,
    )

    async def start(service: str) -> None:
        if ctx.targets.state(service) == "running":
            ctx.journal.record("service.already_running", service=service, step=step_id)
            return
        require_state(ctx, service, ("not-started", "exited"), "start")
        note_restore(ctx, service, UndoKind.START, step_id)
        identity = await start_service(ctx, service)
        record_started(ctx, service, identity, step_id)
        await ctx.ledger.settle(service, UndoKind.START, f"started again by step {step_id}")

    await on_each(targets, start)


ACTION = TargetAction(
    key="start",
    model=StartStep,
    inject=inject,
    describe=describe,
    default_timeout_s=30.0,
    is_fault=False,
    undo="remove (the first start of a service the run creates)",
)

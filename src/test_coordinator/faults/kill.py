"""kill: send a signal to the service (every process of its group, or its container).

Undo by signal:

* a signal that stops a process (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU): ``resume``;
* any other: ``start``, since it may end a service that does not handle it; the
  undo starts it again if it is gone at the end, or checks it is healthy.

After SIGKILL, SIGTERM, SIGINT or SIGQUIT the step waits until the target has
exited, and its recovery is measured (from the signal to the first healthy
probe of a new incarnation, once something starts it again). A stopping signal
is a ``pause``: its recovery is measured to the first healthy probe of the same
process, once something resumes it.
"""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING

from test_coordinator.faults.base import TargetAction
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import SignalName, Targets

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

TERMINATING_SIGNALS = frozenset({"SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"})
"""Signals after which the step waits for the target to exit and recovery is measured."""
STOPPING_SIGNALS = frozenset({"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU"})
"""Signals that freeze a process: their undo resumes it."""


class KillStep(StepBase):
    """Send a signal to the service's process group or container (default SIGKILL)."""

    kill: Targets
    signal: SignalName = "SIGKILL"


def describe(step: KillStep, names: str) -> str:
    return f"kill {names} with {step.signal}"


async def inject(ctx: RunContext, step_id: str, step: KillStep, targets: tuple[str, ...]) -> None:
    from test_coordinator.engine.undo_actions import UndoKind
    from test_coordinator.faults.acting import inject_fault, on_each, require_state, wait_exited

    signum = signals.Signals[step.signal]
    terminating = step.signal in TERMINATING_SIGNALS
    stopping = step.signal in STOPPING_SIGNALS
    undo = UndoKind.RESUME if stopping else UndoKind.START
    fault = f"kill {step.signal}"

    async def kill(service: str) -> None:
        require_state(ctx, service, ("running", "paused"), f"send {step.signal} to")

        async def act() -> None:
            await ctx.targets.signal(service, signum)
            if terminating:
                await wait_exited(ctx, service)

        await inject_fault(
            ctx,
            step_id,
            service,
            undo=undo,
            fault=fault,
            act=act,
            new_process=not stopping,
            measured=terminating or stopping,  # a stopped process is a pause
        )

    await on_each(targets, kill)


ACTION = TargetAction(
    key="kill",
    model=KillStep,
    inject=inject,
    describe=describe,
    default_timeout_s=15.0,
    is_fault=True,
    undo="resume after a stopping signal, otherwise start",
)

"""What the fault modules share when they act: states, several targets at once, a start
that records the removal of what it creates. Imported only when a fault is injected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from test_coordinator.engine.context import RunContext
from test_coordinator.engine.errors import StepFailed
from test_coordinator.engine.tasks import first_error
from test_coordinator.engine.undo import UndoEntry
from test_coordinator.engine.undo_actions import UndoKind
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.probe_result import ProbeResult

_FOREVER_S = 24 * 3600.0
"""For polls bounded by the step's timeout rather than their own deadline."""


def require_state(ctx: RunContext, service: str, allowed: tuple[str, ...], action: str) -> None:
    state = ctx.targets.state(service)
    if state not in allowed:
        raise StepFailed(f"cannot {action} {service}: it is {state}")


async def on_each(
    targets: tuple[str, ...], action: Callable[[str], Coroutine[Any, Any, None]]
) -> None:
    """``action`` on every target at once; the first failure is raised."""

    async def each() -> None:
        if len(targets) == 1:
            await action(targets[0])
            return
        async with asyncio.TaskGroup() as group:
            for service in targets:
                group.create_task(action(service))

    await first_error(each())


async def inject_fault(
    ctx: RunContext,
    step_id: str,
    service: str,
    *,
    undo: UndoKind,
    fault: str,
    act: Callable[[], Awaitable[None]],
    new_process: bool,
    measured: bool = True,
    restores_itself: bool = False,
) -> UndoEntry:
    """The order every fault keeps: its undo stored (with the journal), a recovery watch
    opened at the moment of injection, the audit trail told, then the act itself.

    The recovery is also measured from the ``resume`` or ``start`` (the kind of ``undo``)
    that restores the fault, unless it ``restores_itself`` (a restart)."""
    entry = await ctx.ledger.register(ctx.undo_action(undo, service))
    name = ctx.step_names[step_id]
    watch = (
        ctx.recoveries.begin(
            service,
            step_id,
            name,
            fault,
            ctx.clock.now_s(),
            new_process=new_process,
            restore="" if restores_itself else undo.value,
        )
        if measured
        else None
    )
    ctx.audit.injected(entry, fault, name)
    await act()
    if watch is not None:
        ctx.recoveries.action_done(watch)
    return entry


async def start_service(ctx: RunContext, service: str) -> str:
    """Start ``service``; the first time the run creates it, its removal is recorded first."""
    if ctx.targets.owns(service) and not ctx.ledger.has_pending(service, UndoKind.REMOVE):
        await ctx.ledger.register(ctx.undo_action(UndoKind.REMOVE, service))
    return await ctx.targets.start(service)


def note_restore(ctx: RunContext, service: str, restore: UndoKind, step_id: str) -> None:
    """A ``resume`` or ``start`` step is about to restore ``service``: the moment its fault's
    recovery is also measured from."""
    by = f"step {step_id} ({ctx.step_names[step_id]})"
    ctx.recoveries.restored(service, restore.value, by, ctx.clock.now_s())


def record_started(ctx: RunContext, service: str, identity: str, step: str) -> None:
    ctx.journal.record(
        "service.started",
        service=service,
        identity=identity,
        step=step,
        **ctx.targets.handle(service),
    )


async def wait_exited(ctx: RunContext, service: str) -> None:
    """Until the target is reported gone (bounded by the step's timeout)."""

    async def exited() -> ProbeResult:
        state = ctx.targets.state(service)
        return ProbeResult(state not in ("running", "paused"), state, f"{service} is {state}", 0.0)

    await wait_until(exited, deadline_s=_FOREVER_S, interval_s=ctx.deps.poll_interval_s)

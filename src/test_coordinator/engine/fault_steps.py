"""The fault steps: start, stop, restart, kill, pause and resume of services.

Every fault registers its undo (durably) before it is injected, and opens a
recovery watch at the moment of injection.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from test_coordinator.engine.context import RunContext
from test_coordinator.engine.errors import StepFailed
from test_coordinator.engine.tasks import first_error
from test_coordinator.engine.undo_actions import UndoKind
from test_coordinator.runtime.polling import wait_until
from test_coordinator.runtime.probes import ProbeResult
from test_coordinator.scenario.steps import (
    STOPPING_SIGNALS,
    TERMINATING_SIGNALS,
    KillStep,
    PauseStep,
    RestartStep,
    ResumeStep,
    StartStep,
    StopStep,
)

_FOREVER_S = 24 * 3600.0
"""For polls bounded by the step's timeout rather than their own deadline."""


def _require_state(ctx: RunContext, service: str, allowed: tuple[str, ...], action: str) -> None:
    state = ctx.targets.state(service)
    if state not in allowed:
        raise StepFailed(f"cannot {action} {service}: it is {state}")


async def start_service(ctx: RunContext, service: str) -> str:
    """Start ``service``; the first time the run creates it, its removal is recorded first."""
    if ctx.targets.owns(service) and not ctx.ledger.has_pending(service, UndoKind.REMOVE):
        await ctx.ledger.register(ctx.undo_action(UndoKind.REMOVE, service))
    return await ctx.targets.start(service)


async def _each(
    targets: tuple[str, ...], action: Callable[[str], Coroutine[Any, Any, None]]
) -> None:
    if len(targets) == 1:
        await action(targets[0])
        return
    async with asyncio.TaskGroup() as group:
        for service in targets:
            group.create_task(action(service))


async def start_step(
    ctx: RunContext, step_id: str, step: StartStep, targets: tuple[str, ...]
) -> None:
    async def start(service: str) -> None:
        if ctx.targets.state(service) == "running":
            ctx.journal.record("service.already_running", service=service, step=step_id)
            return
        _require_state(ctx, service, ("not-started", "exited"), "start")
        identity = await start_service(ctx, service)
        ctx.journal.record(
            "service.started",
            service=service,
            identity=identity,
            step=step_id,
            **ctx.targets.handle(service),
        )
        await ctx.ledger.settle(service, UndoKind.START, f"started again by step {step_id}")

    await first_error(_each(targets, start))


async def stop_step(
    ctx: RunContext, step_id: str, step: StopStep, targets: tuple[str, ...]
) -> None:
    async def stop(service: str) -> None:
        _require_state(ctx, service, ("running", "paused"), "stop")
        entry = await ctx.ledger.register(ctx.undo_action(UndoKind.START, service))
        watch = ctx.recoveries.begin(
            service, step_id, ctx.step_names[step_id], "stop", ctx.clock.now_s(), new_process=True
        )
        ctx.audit.injected(entry, "stop", ctx.step_names[step_id])
        await ctx.targets.stop(service, step.grace)
        ctx.recoveries.action_done(watch)

    await first_error(_each(targets, stop))


async def restart_step(
    ctx: RunContext, step_id: str, step: RestartStep, targets: tuple[str, ...]
) -> None:
    async def restart(service: str) -> None:
        _require_state(ctx, service, ("running", "paused"), "restart")
        entry = await ctx.ledger.register(ctx.undo_action(UndoKind.START, service))
        watch = ctx.recoveries.begin(
            service,
            step_id,
            ctx.step_names[step_id],
            "restart",
            ctx.clock.now_s(),
            new_process=True,
        )
        ctx.audit.injected(entry, "restart", ctx.step_names[step_id])
        identity = await ctx.targets.restart(service)
        ctx.recoveries.action_done(watch)
        ctx.journal.record(
            "service.started",
            service=service,
            identity=identity,
            step=step_id,
            **ctx.targets.handle(service),
        )
        await ctx.ledger.settle_entry(entry, f"restarted by step {step_id}")
        await ctx.ledger.settle(service, UndoKind.RESUME, f"restarted by step {step_id}")

    await first_error(_each(targets, restart))


async def kill_step(
    ctx: RunContext, step_id: str, step: KillStep, targets: tuple[str, ...]
) -> None:
    sig = signal.Signals[step.signal]
    terminating = step.signal in TERMINATING_SIGNALS
    stopping = step.signal in STOPPING_SIGNALS

    async def kill(service: str) -> None:
        _require_state(ctx, service, ("running", "paused"), f"send {step.signal} to")
        # A signal that stops a process is undone by resuming it; any other may end a
        # service that does not handle it: its undo starts it again if it is gone at
        # the end (and checks it is healthy if it still runs).
        undo = UndoKind.RESUME if stopping else UndoKind.START
        entry = await ctx.ledger.register(ctx.undo_action(undo, service))
        fault = f"kill {step.signal}"
        if not terminating:
            ctx.audit.injected(entry, fault, ctx.step_names[step_id])
            await ctx.targets.signal(service, sig)
            return
        watch = ctx.recoveries.begin(
            service,
            step_id,
            ctx.step_names[step_id],
            fault,
            ctx.clock.now_s(),
            new_process=True,
        )
        ctx.audit.injected(entry, fault, ctx.step_names[step_id])
        await ctx.targets.signal(service, sig)
        await _wait_exited(ctx, service)
        ctx.recoveries.action_done(watch)

    await first_error(_each(targets, kill))


async def _wait_exited(ctx: RunContext, service: str) -> None:
    """Until the backend reports the process gone (bounded by the step's timeout)."""

    async def exited() -> ProbeResult:
        state = ctx.targets.state(service)
        return ProbeResult(state not in ("running", "paused"), state, f"{service} is {state}", 0.0)

    await wait_until(exited, deadline_s=_FOREVER_S, interval_s=ctx.deps.poll_interval_s)


async def pause_step(
    ctx: RunContext, step_id: str, step: PauseStep, targets: tuple[str, ...]
) -> None:
    async def pause(service: str) -> None:
        _require_state(ctx, service, ("running",), "pause")
        entry = await ctx.ledger.register(ctx.undo_action(UndoKind.RESUME, service))
        watch = ctx.recoveries.begin(
            service,
            step_id,
            ctx.step_names[step_id],
            "pause",
            ctx.clock.now_s(),
            new_process=False,
        )
        ctx.audit.injected(entry, "pause", ctx.step_names[step_id])
        await ctx.targets.pause(service)
        ctx.recoveries.action_done(watch)

    await first_error(_each(targets, pause))


async def resume_step(
    ctx: RunContext, step_id: str, step: ResumeStep, targets: tuple[str, ...]
) -> None:
    async def resume(service: str) -> None:
        _require_state(ctx, service, ("paused", "running"), "resume")
        await ctx.targets.resume(service)
        await ctx.ledger.settle(service, UndoKind.RESUME, f"resumed by step {step_id}")

    await first_error(_each(targets, resume))

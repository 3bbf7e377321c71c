"""How each kind of step runs; the faults are in :mod:`test_coordinator.faults`. Every fault
registers its undo before it is injected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from test_coordinator.engine.context import RunContext
from test_coordinator.engine.errors import ConditionViolated, InfrastructureError, StepFailed
from test_coordinator.engine.log_marks import mark_logs
from test_coordinator.engine.results import Status, StepResult
from test_coordinator.engine.tasks import first_error
from test_coordinator.faults import ACTIONS
from test_coordinator.runtime.polling import DeadlineExceeded, wait_until
from test_coordinator.scenario.durations import format_duration
from test_coordinator.scenario.network import linking_proxies
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.steps import (
    AlwaysStep,
    BackgroundAlways,
    BackgroundStep,
    ExpectStep,
    ParallelStep,
    PartitionStep,
    ProbeStep,
    StepBase,
    WaitStep,
    effective_timeout,
    step_kind,
)
from test_coordinator.targets.port import TargetError

Handler = Callable[[RunContext, str, Any, tuple[str, ...]], Awaitable[Any]]


async def run_steps(ctx: RunContext, steps: tuple[StepBase, ...]) -> None:
    """The top-level steps in order; the first failure raises."""
    for index, step in enumerate(steps, start=1):
        await run_step(ctx, str(index), step)


async def run_step(ctx: RunContext, step_id: str, step: StepBase) -> None:
    """Run one step within its timeout; record its result; raise StepFailed if it failed."""
    kind = step_kind(step)
    step = ctx.resolve(step)  # type: ignore[assignment]
    targets = ctx.chosen.get(step_id, ())
    name = ctx.step_names[step_id]
    timeout_s = effective_timeout(step)
    ctx.current_step = f"step {step_id} ({name})"
    marked = ctx.log_marks_wanted.get(name)
    if marked:
        await mark_logs(ctx, step_id, name, marked)
    started = ctx.clock.ms()
    ctx.step_starts_ms[name] = started
    ctx.journal.record(
        "step.started",
        at_ms=started,
        step=step_id,
        name=name,
        kind=kind,
        targets=list(targets),
        timeout_s=timeout_s,
    )
    status, detail, value = Status.PASSED, "", None
    try:
        async with asyncio.timeout(timeout_s) as scope:
            value = await _HANDLERS[kind](ctx, step_id, step, targets)
    except TimeoutError:
        if not scope.expired():
            raise
        status, detail = Status.FAILED, f"timed out after {format_duration(timeout_s)}"
    except StepFailed as exc:
        status, detail = Status.FAILED, str(exc)
    except TargetError as exc:
        if exc.infrastructure:
            status, detail = Status.ERROR, str(exc)
        else:
            status, detail = Status.FAILED, str(exc)
    except InfrastructureError as exc:
        status, detail = Status.ERROR, str(exc)
    except asyncio.CancelledError:
        _finish(ctx, step_id, name, kind, targets, started, Status.ERROR, "cancelled", None)
        raise
    _finish(ctx, step_id, name, kind, targets, started, status, detail, value)
    if status is Status.ERROR:
        raise InfrastructureError(f"step {step_id} ({name}): {detail}")
    if status is Status.FAILED:
        raise StepFailed(f"step {step_id} ({name}): {detail}")


def _finish(
    ctx: RunContext,
    step_id: str,
    name: str,
    kind: str,
    targets: tuple[str, ...],
    started: float,
    status: Status,
    detail: str,
    value: Any,
) -> None:
    ended = ctx.clock.ms()
    ctx.step_results.append(
        StepResult(step_id, name, kind, status, started, ended, detail, targets, value)
    )
    ctx.journal.record(
        "step.finished",
        at_ms=ended,
        step=step_id,
        name=name,
        status=status.value,
        detail=detail,
        duration_ms=round(ended - started, 3),
        **({"value": value} if value is not None else {}),
    )


# -- observation steps -----------------------------------------------------------


async def _wait(ctx: RunContext, step_id: str, step: WaitStep, targets: tuple[str, ...]) -> None:
    await asyncio.sleep(step.wait)


async def _expect(ctx: RunContext, step_id: str, step: ExpectStep, targets: tuple[str, ...]) -> Any:
    spec = step.expect
    if spec.every is not None:
        interval = ceiling = spec.every
    else:
        interval, ceiling = _default_pace(ctx, spec)
    try:
        result, _ = await wait_until(
            lambda: ctx.checker.check(spec),
            deadline_s=spec.within,
            interval_s=interval,
            max_interval_s=ceiling,
        )
    except DeadlineExceeded as exc:
        last = exc.last.detail if exc.last is not None else "no answer"
        raise StepFailed(
            f"{spec.describe()}: not true within {format_duration(spec.within)} "
            f"({exc.attempts} attempts); last: {last}"
        ) from None
    _capture(ctx, step_id, step.capture, result.value)
    return result.value


def _default_pace(ctx: RunContext, condition: Condition) -> tuple[float, float]:
    """How often to poll a condition that does not say, and how far to back off while
    its target refuses: as its probes are polled."""
    default = ctx.deps.poll_interval_s
    services = ctx.loaded.model.services
    if condition.healthy is not None:
        probes = [services[name].health for name in condition.healthy]
    elif condition.probe is not None:
        probes = [condition.probe]
    else:
        return default, default
    return max(p.interval(default) for p in probes), max(p.max_interval(default) for p in probes)


async def _probe(ctx: RunContext, step_id: str, step: ProbeStep, targets: tuple[str, ...]) -> Any:
    result = await ctx.checker.check(step.probe)
    if not result.ok:
        raise StepFailed(f"{step.probe.describe()}: {result.detail}")
    _capture(ctx, step_id, step.capture, result.value)
    return result.value


def _capture(ctx: RunContext, step_id: str, name: str | None, value: Any) -> None:
    if name is not None:
        ctx.captured[name] = value
        ctx.journal.record("variable.captured", step=step_id, name=name, value=value)


class Lateness:
    """How late samples started against their schedule (a starved loop shows here)."""

    KEPT = 100_000

    def __init__(self) -> None:
        self._late_ms: list[float] = []
        self.max_ms = 0.0

    def add(self, late_s: float) -> None:
        late_ms = max(0.0, late_s * 1000.0)
        self.max_ms = max(self.max_ms, late_ms)
        if len(self._late_ms) < self.KEPT:
            self._late_ms.append(late_ms)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self._late_ms)
        if not ordered:
            return {}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"p50": at(0.50), "p99": at(0.99), "max": round(self.max_ms, 3)}


async def hold(
    ctx: RunContext,
    condition: Condition,
    every_s: float,
    window_s: float | None,
    step_id: str,
    lateness: Lateness | None = None,
) -> int:
    """Sample ``condition`` every ``every_s`` for ``window_s`` (None: until cancelled).

    Raises ConditionViolated at the first sample that fails. ``lateness`` learns how
    late each sample started against its schedule.
    """
    clock = ctx.clock
    start = clock.now_s()
    next_at = start
    samples = 0
    while window_s is None or next_at - start <= window_s + 1e-9:
        if lateness is not None:
            lateness.add(clock.now_s() - next_at)
        result = await ctx.checker.check(condition)
        samples += 1
        if not result.ok:
            at_ms = clock.ms()
            ctx.journal.record(
                "condition.violated",
                at_ms=at_ms,
                step=step_id,
                detail=result.detail,
                samples=samples,
            )
            raise ConditionViolated(
                f"{condition.describe()} broke at {at_ms:.0f} ms (sample {samples}): "
                f"{result.detail}"
            )
        next_at += every_s
        delay = next_at - clock.now_s()
        if delay > 0:
            await asyncio.sleep(delay)
    return samples


async def _always(ctx: RunContext, step_id: str, step: AlwaysStep, targets: tuple[str, ...]) -> Any:
    lateness = Lateness()
    samples = await hold(ctx, step.always, step.always.every, step.always.window, step_id, lateness)
    return {"samples": samples, "late_ms": lateness.summary()}


async def _background(
    ctx: RunContext, step_id: str, step: BackgroundStep, targets: tuple[str, ...]
) -> None:
    spec = step.background
    if spec.always is not None:
        always: BackgroundAlways = spec.always
        ctx.background.spawn(step_id, _background_hold(ctx, always, step_id))
        return
    assert spec.load is not None
    runner = ctx.deps.load_factory(spec.load, ctx.clock.origin_s)
    runner.start()
    ctx.loads[ctx.step_names[step_id]] = runner
    ctx.background.add_load(step_id, runner)
    ctx.journal.record("load.started", step=step_id, url=spec.load.describe(), rate=spec.load.rate)
    if spec.load.duration is not None:
        ctx.background.spawn(step_id, _stop_after(ctx, runner, spec.load.duration, step_id))


async def _background_hold(ctx: RunContext, condition: BackgroundAlways, step_id: str) -> None:
    try:
        await hold(ctx, condition, condition.every, None, step_id)
    except ConditionViolated as exc:
        raise ConditionViolated(f"background step {step_id}: {exc}") from None


async def _stop_after(ctx: RunContext, runner: Any, duration_s: float, step_id: str) -> None:
    await asyncio.sleep(duration_s)
    await ctx.background.stop_load(step_id, runner)


async def _parallel(
    ctx: RunContext, step_id: str, step: ParallelStep, targets: tuple[str, ...]
) -> None:
    async def child(index: int, inner: StepBase) -> None:
        await run_step(ctx, f"{step_id}.{index}", inner)

    await first_error(_group(child, step.parallel))


async def _group(
    child: Callable[[int, StepBase], Coroutine[Any, Any, None]], steps: tuple[StepBase, ...]
) -> None:
    async with asyncio.TaskGroup() as group:
        for index, inner in enumerate(steps, start=1):
            group.create_task(child(index, inner))


async def _partition(
    ctx: RunContext, step_id: str, step: PartitionStep, targets: tuple[str, ...]
) -> Any:
    from test_coordinator.faults.network_acting import set_network_fault

    spec = step.partition
    proxies = linking_proxies(ctx.loaded.model.services, spec.between, spec.and_)
    if not proxies:
        from test_coordinator.faults.network_acting import disconnect_containers

        return {"disconnected": await disconnect_containers(ctx, step_id, spec.between, spec.and_)}
    cut = {"kind": "partition", "direction": "both"}

    async def each(service: str) -> None:
        await set_network_fault(
            ctx, step_id, service, cut, pulse=None, allow_untouched=spec.allow_untouched
        )

    async with asyncio.TaskGroup() as group:  # both ways at once
        for service in proxies:
            group.create_task(each(service))
    return {"proxies": list(proxies)}


_HANDLERS: dict[str, Handler] = {
    **{key: action.inject for key, action in ACTIONS.items()},
    "wait": _wait,
    "expect": _expect,
    "always": _always,
    "probe": _probe,
    "background": _background,
    "partition": _partition,
    "parallel": _parallel,
}

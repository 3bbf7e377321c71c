"""The scenario's steps in order, numbered, with their targets chosen and their timeouts.

Shared by the engine and ``plan``, so that what ``plan --seed N`` shows is what
``run --seed N`` does: random targets are drawn once, in step order, from
``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from test_coordinator.faults import ACTIONS
from test_coordinator.scenario.durations import format_duration
from test_coordinator.scenario.steps import (
    AlwaysStep,
    BackgroundStep,
    ExpectStep,
    ParallelStep,
    ProbeStep,
    StepBase,
    WaitStep,
    effective_timeout,
    step_kind,
    targets_of,
)


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step with its id (``3``, or ``3.2`` inside parallel group 3) and its depth."""

    step_id: str
    step: StepBase
    depth: int

    @property
    def kind(self) -> str:
        return step_kind(self.step)

    @property
    def timeout_s(self) -> float:
        return effective_timeout(self.step)


def plan_steps(steps: tuple[StepBase, ...], prefix: str = "", depth: int = 0) -> list[PlannedStep]:
    planned: list[PlannedStep] = []
    for index, step in enumerate(steps, start=1):
        step_id = f"{prefix}{index}"
        planned.append(PlannedStep(step_id, step, depth))
        if isinstance(step, ParallelStep):
            planned.extend(plan_steps(step.parallel, f"{step_id}.", depth + 1))
    return planned


def choose_targets(planned: list[PlannedStep], seed: int) -> dict[str, tuple[str, ...]]:
    """The services each targeted step acts on; random ones drawn with ``seed``, in order."""
    rng = random.Random(seed)
    chosen: dict[str, tuple[str, ...]] = {}
    for item in planned:
        targets = targets_of(item.step)
        if targets is None:
            continue
        if targets.random:
            chosen[item.step_id] = tuple(rng.sample(list(targets.services), targets.pick))
        else:
            chosen[item.step_id] = targets.services
    return chosen


def describe_step(step: StepBase, targets: tuple[str, ...] = ()) -> str:
    """A short name for a step that has none: ``restart orders``, ``wait 500ms``."""
    if step.name:
        return step.name
    kind = step_kind(step)
    action = ACTIONS.get(kind)
    if action is not None:
        return action.describe(step, ", ".join(targets))
    if isinstance(step, WaitStep):
        return f"wait {format_duration(step.wait)}"
    if isinstance(step, ExpectStep):
        return f"expect {step.expect.describe()} within {format_duration(step.expect.within)}"
    if isinstance(step, AlwaysStep):
        spec = step.always
        return (
            f"always {spec.describe()} for {format_duration(spec.window)} "
            f"every {format_duration(spec.every)}"
        )
    if isinstance(step, ProbeStep):
        return f"probe {step.probe.describe()}"
    if isinstance(step, BackgroundStep):
        if step.background.load is not None:
            load = step.background.load
            return f"background load {load.rate:g}/s {load.method} {load.url}"
        assert step.background.always is not None
        always = step.background.always
        return f"background always {always.describe()} every {format_duration(always.every)}"
    if isinstance(step, ParallelStep):
        return f"parallel ({len(step.parallel)} steps)"
    return kind


def walk(planned: list[PlannedStep], top_level_only: bool = False) -> Iterator[PlannedStep]:
    for item in planned:
        if not top_level_only or item.depth == 0:
            yield item


def children(planned: list[PlannedStep], parent_id: str) -> list[PlannedStep]:
    prefix = f"{parent_id}."
    return [
        item
        for item in planned
        if item.step_id.startswith(prefix) and item.step_id.count(".") == parent_id.count(".") + 1
    ]


def step_names(planned: list[PlannedStep], chosen: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {
        item.step_id: describe_step(item.step, chosen.get(item.step_id, ())) for item in planned
    }

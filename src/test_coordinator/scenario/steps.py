"""Steps: what a scenario does, in order.

Each step is a mapping with exactly one action key (``restart: api``) and
optional ``name`` and ``timeout``. Every step has a timeout: the one written, or
the default for its kind (:func:`default_timeout`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Field, Tag, model_validator

from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.types import (
    Duration,
    SignalName,
    Strict,
    Targets,
    Text,
    VarName,
    key_discriminator,
    kind_of,
)

DEFAULT_EXPECT_WITHIN_S = 10.0
DEFAULT_ALWAYS_EVERY_S = 0.1
TIMEOUT_SLACK_S = 5.0
DEFAULT_TIMEOUTS_S = {
    "start": 30.0,
    "stop": 30.0,
    "restart": 60.0,
    "kill": 15.0,
    "pause": 10.0,
    "resume": 10.0,
    "probe": 15.0,
    "background": 5.0,
}
TERMINATING_SIGNALS = frozenset({"SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT"})
"""Signals after which a kill step waits for the process to exit and registers a restart as undo."""
STOPPING_SIGNALS = frozenset({"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU"})
"""Signals that stop (freeze) a process: a kill step with one registers a resume as undo."""


class StepBase(Strict):
    name: Text | None = None
    timeout: Duration | None = None


class StartStep(StepBase):
    """Start the services that are not running (running ones are left as they are).

    Returns once the processes run; follow with ``expect`` to wait for health.
    """

    start: Targets


class StopStep(StepBase):
    """SIGTERM, ``grace`` (default: the service's ``stop_grace``), then SIGKILL."""

    stop: Targets
    grace: Duration | None = None


class RestartStep(StepBase):
    """Stop then start; recovery is measured from the stop to the first healthy probe."""

    restart: Targets


class KillStep(StepBase):
    """Send a signal to the service's process group (default SIGKILL).

    After SIGKILL, SIGTERM, SIGINT or SIGQUIT the step waits until the process has
    exited, and its recovery is measured (from the signal to the first healthy
    probe of a new process, once something starts it again).
    """

    kill: Targets
    signal: SignalName = "SIGKILL"


class PauseStep(StepBase):
    """SIGSTOP the service's process group; a later ``resume`` (or the undo) continues it."""

    pause: Targets


class ResumeStep(StepBase):
    resume: Targets


class WaitStep(StepBase):
    wait: Duration


class ExpectSpec(Condition):
    """A condition that must become true within ``within`` ("eventually")."""

    within: Duration = DEFAULT_EXPECT_WITHIN_S
    every: Duration | None = None


class ExpectStep(StepBase):
    expect: ExpectSpec
    capture: VarName | None = None


class AlwaysSpec(Condition):
    """A condition that must hold for ``for``, sampled every ``every``; one violation fails."""

    window: Duration = Field(alias="for")
    every: Duration = DEFAULT_ALWAYS_EVERY_S


class AlwaysStep(StepBase):
    always: AlwaysSpec


class ProbeStep(StepBase):
    """Look once; fail unless the condition holds. ``capture`` keeps the value for later steps."""

    probe: Condition
    capture: VarName | None = None


class BackgroundAlways(Condition):
    """A condition checked every ``every`` beside the later steps, until the last step ends."""

    every: Duration = DEFAULT_ALWAYS_EVERY_S


class LoadSpec(Strict):
    """HTTP requests at ``rate`` per second, every outcome and latency recorded."""

    url: Text
    rate: float = Field(gt=0, le=10_000)
    duration: Duration | None = None
    method: str = "GET"
    timeout: Duration = 2.0


class BackgroundSpec(Strict):
    always: BackgroundAlways | None = None
    load: LoadSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BackgroundSpec:
        present = [name for name in ("always", "load") if getattr(self, name) is not None]
        if len(present) != 1:
            raise ValueError("background needs exactly one of always, load")
        return self


class BackgroundStep(StepBase):
    """Starts at once and runs beside the later steps; it stops when the last step ends."""

    background: BackgroundSpec


class ParallelStep(StepBase):
    """Runs its steps at the same time; the first failure cancels the others."""

    parallel: tuple[Step, ...] = Field(min_length=1)


STEP_TYPES: dict[str, type[StepBase]] = {
    "start": StartStep,
    "stop": StopStep,
    "restart": RestartStep,
    "kill": KillStep,
    "pause": PauseStep,
    "resume": ResumeStep,
    "wait": WaitStep,
    "expect": ExpectStep,
    "always": AlwaysStep,
    "probe": ProbeStep,
    "background": BackgroundStep,
    "parallel": ParallelStep,
}
STEP_KINDS = tuple(STEP_TYPES)
FAULT_KINDS = frozenset({"stop", "restart", "kill", "pause"})
TARGETED_KINDS = ("start", "stop", "restart", "kill", "pause", "resume")


def step_kind(step: StepBase) -> str:
    return kind_of(step, STEP_TYPES)


Step = Annotated[
    Annotated[StartStep, Tag("step:start")]
    | Annotated[StopStep, Tag("step:stop")]
    | Annotated[RestartStep, Tag("step:restart")]
    | Annotated[KillStep, Tag("step:kill")]
    | Annotated[PauseStep, Tag("step:pause")]
    | Annotated[ResumeStep, Tag("step:resume")]
    | Annotated[WaitStep, Tag("step:wait")]
    | Annotated[ExpectStep, Tag("step:expect")]
    | Annotated[AlwaysStep, Tag("step:always")]
    | Annotated[ProbeStep, Tag("step:probe")]
    | Annotated[BackgroundStep, Tag("step:background")]
    | Annotated[ParallelStep, Tag("step:parallel")],
    Discriminator(
        key_discriminator("step", StepBase, STEP_TYPES),
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one action key",
    ),
]
"""One step; which model is chosen by its action key (tags are ``step:<kind>``)."""

ParallelStep.model_rebuild()


def targets_of(step: StepBase) -> Targets | None:
    kind = step_kind(step)
    if kind in TARGETED_KINDS:
        targets: Targets = getattr(step, kind)
        return targets
    return None


def default_timeout(step: StepBase) -> float:
    """The step's timeout when none is written, in seconds (see docs/scenarios.md)."""
    kind = step_kind(step)
    if isinstance(step, WaitStep):
        return step.wait + TIMEOUT_SLACK_S
    if isinstance(step, ExpectStep):
        return step.expect.within + TIMEOUT_SLACK_S
    if isinstance(step, AlwaysStep):
        return step.always.window + TIMEOUT_SLACK_S
    if isinstance(step, ParallelStep):
        return max(effective_timeout(child) for child in step.parallel)
    return DEFAULT_TIMEOUTS_S[kind]


def effective_timeout(step: StepBase) -> float:
    return step.timeout if step.timeout is not None else default_timeout(step)

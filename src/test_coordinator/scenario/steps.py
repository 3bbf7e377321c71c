"""Steps: what a scenario does, in order.

Each step is a mapping with exactly one action key (``restart: api``) and
optional ``name`` and ``timeout``. Every step has a timeout: the one written, or
the default for its kind (:func:`default_timeout`). The steps that act on
targets (faults, and ``start``/``resume``) are defined in :mod:`test_coordinator.faults`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Discriminator, Field, Tag, model_validator

from test_coordinator.faults import ACTIONS, FAULT_KINDS, RESTORING_KINDS
from test_coordinator.scenario.probes import Condition
from test_coordinator.scenario.step_base import StepBase
from test_coordinator.scenario.types import (
    Duration,
    ServiceList,
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
    **{key: action.default_timeout_s for key, action in ACTIONS.items()},
    "probe": 15.0,
    "background": 5.0,
    "partition": 10.0,
}


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


class LoadTcp(Strict):
    """TCP connects; each one accepted is a success (and is closed at once)."""

    host: Text = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class LoadCommand(Strict):
    """A command (no shell) run at the rate; exit status 0 is a success.

    ``env`` is added to the coordinator's environment; ``cwd`` is where it runs.
    """

    argv: tuple[Text, ...] = Field(min_length=1)
    env: dict[str, Text] = Field(default_factory=dict)
    cwd: Text | None = None


LOAD_KINDS = ("url", "tcp", "command")


class LoadSpec(Strict):
    """Attempts at ``rate`` per second, every outcome, latency and failure reason recorded:
    HTTP requests (``url``, with ``method``), TCP connects (``tcp``) or commands
    (``command``), exactly one of them."""

    url: Text | None = None
    tcp: LoadTcp | None = None
    command: LoadCommand | None = None
    rate: float = Field(gt=0, le=5_000)
    duration: Duration | None = None
    method: str = "GET"
    timeout: Duration = 2.0

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> LoadSpec:
        present = [name for name in LOAD_KINDS if getattr(self, name) is not None]
        if len(present) != 1:
            raise ValueError("load needs exactly one of url, tcp, command")
        if self.url is None and "method" in self.model_fields_set:
            raise ValueError("method goes with url (an HTTP load) only")
        return self

    def describe(self) -> str:
        """What the load sends to, for the journal: the URL, ``tcp://host:port`` or
        ``command: argv``."""
        if self.tcp is not None:
            host = f"[{self.tcp.host}]" if ":" in self.tcp.host else self.tcp.host
            return f"tcp://{host}:{self.tcp.port}"
        if self.command is not None:
            return "command: " + " ".join(self.command.argv)
        assert self.url is not None
        return self.url


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


class PartitionSpec(Strict):
    """Two sets of services to cut apart, both ways at once, through the proxies that link
    them (a proxy ``to`` one side, used by ``clients`` on the other, or by anyone)."""

    between: ServiceList
    and_: ServiceList = Field(alias="and")
    allow_untouched: bool = False

    @model_validator(mode="after")
    def _disjoint(self) -> PartitionSpec:
        both = sorted(set(self.between) & set(self.and_))
        if both:
            raise ValueError(f"{', '.join(both)}: on both sides of the partition")
        return self


class PartitionStep(StepBase):
    """Cut ``between`` from ``and`` until a ``heal`` of the proxies, or the run's end."""

    partition: PartitionSpec


class ParallelStep(StepBase):
    """Runs its steps at the same time; the first failure cancels the others."""

    parallel: tuple[Step, ...] = Field(min_length=1)


STEP_TYPES: dict[str, type[StepBase]] = {
    **{key: action.model for key, action in ACTIONS.items()},
    "wait": WaitStep,
    "expect": ExpectStep,
    "always": AlwaysStep,
    "probe": ProbeStep,
    "background": BackgroundStep,
    "partition": PartitionStep,
    "parallel": ParallelStep,
}
STEP_KINDS = tuple(STEP_TYPES)
TARGETED_KINDS = tuple(ACTIONS)


def step_kind(step: StepBase) -> str:
    return kind_of(step, STEP_TYPES)


if TYPE_CHECKING:
    Step = StepBase
else:
    Step = Annotated[
        Union[  # noqa: UP007 - a Union built from the registry, not written out
            tuple(Annotated[model, Tag(f"step:{key}")] for key, model in STEP_TYPES.items())
        ],
        Discriminator(
            key_discriminator("step", StepBase, STEP_TYPES),
            custom_error_type="step_kind",
            custom_error_message="a step needs exactly one action key",
        ),
    ]
"""One step; which model is chosen by its action key (tags are ``step:<kind>``)."""

# ParallelStep's ``Step`` (defined above it) is resolved from this module when its
# validator is first built (the scenario models are built on first use, see Strict):
# no model_rebuild() here, which would build every step model at import.


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


__all__ = [
    "FAULT_KINDS",
    "RESTORING_KINDS",
    "STEP_KINDS",
    "STEP_TYPES",
    "TARGETED_KINDS",
    "Step",
    "StepBase",
]

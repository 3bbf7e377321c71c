"""What a kind of step that acts on targets declares about itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from test_coordinator.scenario.step_base import StepBase

if TYPE_CHECKING:
    from test_coordinator.engine.context import RunContext

Injector = Callable[["RunContext", str, Any, tuple[str, ...]], Awaitable[None]]
"""``(ctx, step_id, step, targets)``: act on every target; raise StepFailed if refused."""


@dataclass(frozen=True, slots=True)
class TargetAction:
    key: str
    """The step's action key in a scenario (``pause: exchange``)."""
    model: type[StepBase]
    inject: Injector
    describe: Callable[[Any, str], str]
    """``(step, "a, b")``: the plan's and the report's name for a step that has none."""
    default_timeout_s: float
    is_fault: bool
    """True when it breaks something (undo recorded first, recovery measured)."""
    undo: str
    """Which undo it records, for the docs and ``plan``."""

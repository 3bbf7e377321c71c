"""What every step has: an optional ``name`` and ``timeout`` beside its one action key."""

from __future__ import annotations

from test_coordinator.scenario.types import Duration, Strict, Text


class StepBase(Strict):
    name: Text | None = None
    timeout: Duration | None = None

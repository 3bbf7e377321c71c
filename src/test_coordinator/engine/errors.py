"""Why a run stops early; each carries a one-line message for the report."""

from __future__ import annotations


class StepFailed(Exception):
    """A step did not do what it says: a condition not met, a timeout, a refused action."""


class ConditionViolated(StepFailed):
    """An ``always`` condition (foreground or background) broke."""


class InfrastructureError(Exception):
    """The coordinator itself could not act (spawn a process, write its store)."""
